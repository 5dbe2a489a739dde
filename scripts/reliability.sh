#!/usr/bin/env bash
# `make reliability`: the reliability suite (tests/reliability) with its long variants.
# Each scenario drives real JIT traffic at a private stack of real processes (its own
# PostgreSQL, Redis, gunicorn, ledger writers and Celery worker on free ports, under /tmp) and
# ends with the ledger invariants; the shared servers (55432, 56379) are not used. At the end
# it prints the report lines the scenarios wrote; then the hostile-input and security tests
# with FUZZ_EXAMPLES=500 (tests/security). See docs/reliability.md and docs/security.md.
# Durations and rates: RELIABILITY_<FIELD> (tests/reliability/profile.py), e.g.
#   RELIABILITY_LOAD_SECONDS=60 RELIABILITY_LOAD_RATE=400 make reliability
# Extra pytest arguments: make reliability ARGS="-k postgres"
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPORT="$LOG_DIR/reliability-report.txt"

main() {
    [[ -t 0 ]] || exec </dev/null
    bash "$ROOT/scripts/bootstrap.sh"
    load_env
    unset DJANGO_SETTINGS_MODULE # pytest-django takes config.settings.test from pyproject.toml
    cd "$ROOT"
    mkdir -p "$LOG_DIR"
    : >"$REPORT"
    export RELIABILITY_FULL=1 RELIABILITY_REPORT="$REPORT"
    log "pytest tests/reliability, fast and long variants (report: $REPORT)"
    local started=$SECONDS rc=0
    "$VENV/bin/pytest" tests/reliability -m reliability -rfEx "$@" || rc=$?
    # Hostile input and security (tests/security): the schema fuzzer with many more examples
    # per operation than `make test` runs (docs/security.md).
    export FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-500}"
    log "pytest tests/security with FUZZ_EXAMPLES=$FUZZ_EXAMPLES"
    "$VENV/bin/pytest" tests/security -rfEx "$@" || rc=$?
    printf '\nReliability report: %s, %s CPUs, load average %s, %d s\n' \
        "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
        "$((SECONDS - started))"
    cat "$REPORT"
    return "$rc"
}

main "$@"
