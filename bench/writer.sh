#!/usr/bin/env bash
# `make bench-writer`: the ledger writer, set-based against one by one, on a database of its
# own (dropped and recreated: its name contains "bench") and Redis DB 12 (flushed). See
# docs/benchmarks.md "Ledger writer".
#
# Knobs (environment): BENCH_WRITER_EVENTS (10000 per path) BENCH_WRITER_CARDHOLDERS (200 per
# path) BENCH_WRITER_BATCH (500 events a transaction, the writer's default)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
_log_tag="bench-writer"

export DJANGO_SETTINGS_MODULE=config.settings.bench
export BENCH_DATABASE_NAME=cardprogram_bench_writer

main() {
    cd "$ROOT"
    load_env
    export BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-56379}/12}"
    bash "$ROOT/scripts/services.sh" start
    redis-cli -u "$BENCH_REDIS_URL" flushdb >/dev/null
    "$PY" "$ROOT/manage.py" bench_db create "$BENCH_DATABASE_NAME"
    "$PY" "$ROOT/manage.py" migrate --noinput -v0
    mkdir -p "$VAR/bench/writer"
    "$PY" "$ROOT/bench/writer.py" | tee "$VAR/bench/writer/report.md"
}

main "$@"
