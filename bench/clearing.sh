#!/usr/bin/env bash
# `make bench-clearing`: clearing-file ingestion end to end, with its ceiling (a bare csv
# parse) and its floor (a naive line-by-line ORM ingest). See docs/benchmarks.md
# "Clearing files". Everything runs on databases of its own (names contain "bench": they are
# dropped) and Redis DB 11 (flushed).
#
# Knobs (environment): BENCH_CLEARING_LINES (1000000: the file) BENCH_CLEARING_SAMPLE (20000:
# naive vs real) BENCH_CLEARING_CARDHOLDERS (500) BENCH_CLEARING_FULL (1: ingest the whole
# file; 0 skips it, e.g. while the per-line path is far below the target)
# CLEARING_BATCH_LINES (1000: lines per transaction)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
_log_tag="bench-clearing"

LINES="${BENCH_CLEARING_LINES:-1000000}"
SAMPLE="${BENCH_CLEARING_SAMPLE:-20000}"
HOLDERS="${BENCH_CLEARING_CARDHOLDERS:-500}"
FULL="${BENCH_CLEARING_FULL:-1}"
export DJANGO_SETTINGS_MODULE=config.settings.bench
export BENCH_CLEARING_OUT="$VAR/bench/clearing"
export BENCH_CLEARING_CARDHOLDERS="$HOLDERS"
DB=cardprogram_bench_clearing
SEED_DB="${DB}_seed"
FILE="$BENCH_CLEARING_OUT/clearing_bench_20260509_1.csv"
SAMPLE_FILE="$BENCH_CLEARING_OUT/clearing_bench_20260509_2.csv"

manage() { "$PY" "$ROOT/manage.py" "$@"; }
bench() { "$PY" "$ROOT/bench/clearing.py" "$@"; }
fresh_db() { # fresh_db NAME: a clone of the populated seed
    manage bench_db clone "$SEED_DB" "$1"
}

main() {
    cd "$ROOT"
    load_env
    export BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-56379}/11}"
    bash "$ROOT/scripts/services.sh" start
    redis-cli -u "$BENCH_REDIS_URL" flushdb >/dev/null
    rm -rf "$BENCH_CLEARING_OUT"
    mkdir -p "$BENCH_CLEARING_OUT"

    log "populating $SEED_DB: $HOLDERS cardholders, the holds of a $LINES-line file"
    manage bench_db create "$SEED_DB"
    BENCH_DATABASE_NAME="$SEED_DB" manage migrate --noinput -v0
    BENCH_DATABASE_NAME="$SEED_DB" bench populate "$HOLDERS" "$LINES"

    log "generating $FILE and a $SAMPLE-line sample"
    bench generate "$LINES" "$FILE"
    bench head "$FILE" "$SAMPLE_FILE" "$SAMPLE"
    bench ceiling "$FILE"

    log "naive ingest of the sample (the floor)"
    fresh_db "${DB}_naive"
    BENCH_DATABASE_NAME="${DB}_naive" bench naive "$SAMPLE_FILE"
    BENCH_DATABASE_NAME="${DB}_naive" bench fingerprint sample-naive

    log "real ingest of the sample"
    fresh_db "$DB"
    BENCH_DATABASE_NAME="$DB" bench ingest "$SAMPLE_FILE" sample-real
    BENCH_DATABASE_NAME="$DB" bench fingerprint sample-real
    bench compare

    if [[ "$FULL" == 1 ]]; then
        log "real ingest of the whole file ($LINES lines)"
        fresh_db "$DB"
        BENCH_DATABASE_NAME="$DB" bench ingest "$FILE" full
    fi
    bench report | tee "$BENCH_CLEARING_OUT/report.md"
}

main "$@"
