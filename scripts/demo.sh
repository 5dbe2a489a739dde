#!/usr/bin/env bash
# `make demo`: after `make run`, one small day of fake Marqeta traffic, end to end, checked.
# The fake sends JIT requests, then webhooks, writes the clearing file, and checks what the
# platform shows; it exits non-zero on any difference. Extra arguments go to the command,
# e.g. `make demo ARGS="--commando --share-timeout 0.1"`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    [[ -x "$PY" ]] || die "no virtualenv yet: run 'make run' first"
    load_env
    cd "$ROOT"
    local url="${DEMO_BASE_URL:-http://127.0.0.1:$WEB_PORT}"
    curl -fsS --max-time 3 "$url/healthz" >/dev/null 2>&1 ||
        die "the platform does not answer at $url/healthz: run 'make run' first"
    log "a fake Marqeta day against $url"
    exec "$PY" manage.py simulate_marqeta --base-url "$url" \
        --cards "${DEMO_CARDS:-5}" --authorizations "${DEMO_AUTHORIZATIONS:-200}" \
        --seed "${DEMO_SEED:-42}" "$@"
}

main "$@"
