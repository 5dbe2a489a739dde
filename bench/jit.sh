#!/usr/bin/env bash
# `make bench-jit`: the JIT gateway against a bare Django view and a naive PostgreSQL design,
# on one server, one machine, one run. See docs/benchmarks.md.
#
# 1. An isolated database (cardprogram_bench, cloned from a seeded template that is rebuilt
#    only when migrations or bench/population.py change) and Redis DB 9, loaded by bench_load.
# 2. gunicorn config.wsgi:application with config.settings.bench (DEBUG off, no access log).
# 3. bench/run.py: wrk closed loop (max throughput) per endpoint and account mix, an overspend
#    probe, then the open-loop generator at a fixed rate.
# 4. manage.py bench_report: zero-overspend and ledger checks, the table, the targets.
#
# Knobs (environment): BENCH_WORKERS (2) BENCH_THREADS (4) BENCH_WORKER_CLASS (gthread)
# BENCH_DURATION (8 s per closed-loop run) BENCH_ROUNDS (2: interleaved, the best is kept)
# BENCH_CONNECTIONS (32) BENCH_WRK_THREADS (1)
# BENCH_OPEN ("1000:hot,1000:cold,500:hot": open-loop rate:accounts) BENCH_OPEN_DURATION (15 s)
# BENCH_GENERATOR_CPUS (1: the load generator's core, "" = none)
# BENCH_QUIET_WAIT (60 s) BENCH_SCENARIO_QUIET_WAIT (15 s): wait at most this long for other
#   processes to leave the CPUs idle, before the run and before each scenario
# BENCH_SERVER_CPUS ("" = all) BENCH_PORT (8099) BENCH_RESEED (1 = rebuild the template)
# BENCH_SKIP (scenario names, comma-separated, e.g. "naive|cold")
# BENCH_KEEP_REDIS (1 = leave Redis DB 9 as the run left it; by default it is flushed at the end)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
_log_tag="bench-jit"

PORT="${BENCH_PORT:-8099}"
WORKERS="${BENCH_WORKERS:-2}"
THREADS="${BENCH_THREADS:-4}"
WORKER_CLASS="${BENCH_WORKER_CLASS:-gthread}"
GENERATOR_CPUS="${BENCH_GENERATOR_CPUS-1}"
SERVER_CPUS="${BENCH_SERVER_CPUS:-}"
BENCH_DIR="$VAR/bench"
RUN="$BENCH_DIR/run"
BENCH_LOG="$BENCH_DIR/log"
SERVER_PID_FILE="$BENCH_DIR/gunicorn.pid"

export DJANGO_SETTINGS_MODULE=config.settings.bench
export BENCH_DATABASE_NAME="${BENCH_DATABASE_NAME:-cardprogram_bench}"
SEED_DB="${BENCH_DATABASE_NAME}_seed"
export PROMETHEUS_MULTIPROC_DIR="$BENCH_DIR/prometheus"  # as `make run` does

manage() { "$PY" "$ROOT/manage.py" "$@"; }

# Stop the server we started (and only it), whatever happens.
SERVER_PID=""
stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if proc_running "$SERVER_PID"; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            proc_running "$SERVER_PID" || break
            sleep 0.2
        done
        if proc_running "$SERVER_PID"; then
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    rm -f "$SERVER_PID_FILE"
}
trap stop_server EXIT
trap 'exit 130' INT TERM

ensure_tools() {
    if ! command -v wrk >/dev/null; then
        log "installing wrk (Debian package)"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk
    fi
}

# The seeded template: 10,000 cold cardholders take minutes to create through the services,
# so they are created once and cloned (a second) for every run.
prepare_database() {
    local status
    status="$(manage bench_db seed-status "$SEED_DB")"
    if [[ "$status" != fresh || "${BENCH_RESEED:-0}" == 1 ]]; then
        log "seeding the template database $SEED_DB ($status); this takes a couple of minutes once"
        manage bench_db create "$SEED_DB"
        BENCH_DATABASE_NAME="$SEED_DB" manage migrate --noinput -v0
        BENCH_DATABASE_NAME="$SEED_DB" manage bench_seed
        manage bench_db stamp "$SEED_DB"
    fi
    log "cloning $SEED_DB into $BENCH_DATABASE_NAME"
    manage bench_db clone "$SEED_DB" "$BENCH_DATABASE_NAME"
    manage migrate --noinput -v0
    log "loading Redis DB 9 from $BENCH_DATABASE_NAME"
    manage bench_load --out "$RUN"
}

start_server() {
    if curl -fs --max-time 1 "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
        die "something already answers on port $PORT (set BENCH_PORT)"
    fi
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR" "$BENCH_LOG"
    log "starting gunicorn: $WORKERS x $WORKER_CLASS workers, $THREADS threads, cpus ${SERVER_CPUS:-all}"
    local command=(
        "$VENV/bin/gunicorn" config.wsgi:application
        --chdir "$ROOT"
        --bind "127.0.0.1:$PORT"
        --workers "$WORKERS"
        --worker-class "$WORKER_CLASS"
        --threads "$THREADS"
        --reuse-port # one listening socket per worker: the kernel spreads keep-alive connections
        --backlog 2048
        --log-level warning
        --error-logfile "$BENCH_LOG/gunicorn.log"
        --pid "$SERVER_PID_FILE"
    )
    if [[ -n "$SERVER_CPUS" ]]; then
        command=(taskset -c "$SERVER_CPUS" "${command[@]}") # taskset execs: same pid
    fi
    "${command[@]}" >>"$BENCH_LOG/app.log" 2>&1 &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if curl -fs --max-time 1 "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
            return 0
        fi
        proc_running "$SERVER_PID" || break
        sleep 0.2
    done
    tail -n 30 "$BENCH_LOG/gunicorn.log" >&2 || true
    die "gunicorn did not answer on port $PORT"
}

write_meta() {
    local aof cpu
    aof="$(redis-cli -p "$REDIS_PORT" config get appendonly | tail -1), appendfsync $(
        redis-cli -p "$REDIS_PORT" config get appendfsync | tail -1)"
    cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    "$PY" - "$RUN/meta.json" <<PYEOF
import json, sys
json.dump({
    "date": "$(date -u +%Y-%m-%dT%H:%MZ)",
    "machine": "$(nproc) CPUs ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)",
    "server": "gunicorn $("$VENV/bin/gunicorn" --version | awk '{print $3}' | tr -d '()'), $WORKERS x $WORKER_CLASS workers x $THREADS threads, cpus ${SERVER_CPUS:-all}, SO_REUSEPORT, no access log",
    "placement": "load generator on cpu ${GENERATOR_CPUS:-any}$( ((EUID == 0)) && echo ', nice -10') (wrk ${BENCH_WRK_THREADS:-1} thread(s), ${BENCH_CONNECTIONS:-32} connections; open loop: Python asyncio), server/Redis/PostgreSQL on any cpu",
    "aof": "$aof",
}, open(sys.argv[1], "w"))
PYEOF
}

main() {
    cd "$ROOT"
    load_env
    bash "$ROOT/scripts/services.sh" start
    ensure_tools
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p "$RUN" "$BENCH_LOG" "$PROMETHEUS_MULTIPROC_DIR"
    rm -f "$RUN"/results.jsonl* "$RUN"/warmup.jsonl* "$RUN/report.md"
    prepare_database
    start_server
    write_meta
    # The load generator stands for Marqeta: pinned to its core, and (as root) ahead of the
    # server in the run queue, so its own lateness stays out of the server's latency.
    local generator=""
    [[ -n "$GENERATOR_CPUS" ]] && generator="taskset -c $GENERATOR_CPUS"
    ((EUID == 0)) && generator="nice -n -10 $generator"
    "$PY" "$ROOT/bench/run.py" \
        --url "http://127.0.0.1:$PORT" \
        --run-dir "$RUN" \
        --server-pid "$SERVER_PID" \
        --redis-pid "$(pid_of "$RUN_DIR/redis.pid")" \
        --duration "${BENCH_DURATION:-8}" \
        --rounds "${BENCH_ROUNDS:-2}" \
        --connections "${BENCH_CONNECTIONS:-32}" \
        --wrk-threads "${BENCH_WRK_THREADS:-1}" \
        --generator-pin "$generator" \
        --open "${BENCH_OPEN:-1000:hot,1000:cold,500:hot}" \
        --quiet-wait "${BENCH_QUIET_WAIT:-60}" \
        --scenario-quiet-wait "${BENCH_SCENARIO_QUIET_WAIT:-15}" \
        --open-duration "${BENCH_OPEN_DURATION:-15}" \
        --skip "${BENCH_SKIP:-}"
    stop_server
    log "checking for overspend and writing the drain account's decisions to the ledger"
    local flush=(--flush)
    [[ "${BENCH_KEEP_REDIS:-0}" == 1 ]] && flush=()
    manage bench_report --run-dir "$RUN" "${flush[@]}"
    log "report: $RUN/report.md"
}

main "$@"
