#!/usr/bin/env bash
# `make run`: bootstrap, services, migrate, seed, then gunicorn + Celery
# worker + beat as daemons (pid files in var/run/). Safe to run twice.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GUNICORN_PID="$RUN_DIR/gunicorn.pid"
WORKER_PID="$RUN_DIR/celery-worker.pid"
BEAT_PID="$RUN_DIR/celery-beat.pid"
HEALTH_URL="http://127.0.0.1:$WEB_PORT/healthz"

# Django management command with the venv's Python.
manage() { "$PY" "$ROOT/manage.py" "$@"; }

# Remove a pid file whose process is gone; true if the process still runs.
running_or_clean() {
    local pidfile="$1" pattern="$2"
    pid_alive "$pidfile" "$pattern" && return 0
    rm -f "$pidfile"
    return 1
}

# Migrations, demo data (prints credentials + API token), static files.
prepare_app() {
    log "applying migrations"
    manage migrate --noinput
    log "seeding demo data"
    manage seed_demo
    log "collecting static files"
    manage collectstatic --noinput >/dev/null
}

# gunicorn serving config.wsgi on 127.0.0.1:$WEB_PORT.
start_gunicorn() {
    if running_or_clean "$GUNICORN_PID" gunicorn; then
        log "gunicorn already running (pid $(pid_of "$GUNICORN_PID"))"
        return 0
    fi
    log "starting gunicorn on 127.0.0.1:$WEB_PORT"
    "$VENV/bin/gunicorn" config.wsgi:application \
        --chdir "$ROOT" \
        --bind "127.0.0.1:$WEB_PORT" \
        --workers "${WEB_WORKERS:-4}" \
        --daemon \
        --pid "$GUNICORN_PID" \
        --access-logfile "$LOG_DIR/gunicorn-access.log" \
        --error-logfile "$LOG_DIR/gunicorn.log"
}

# The ledger writers: drain the JIT decision streams (Redis) into PostgreSQL, each owning
# half of the outbox partitions (a cardholder's events stay in order on one writer).
start_ledger_writers() {
    local shard pidfile
    for shard in 0 1; do
        pidfile="$RUN_DIR/ledger-writer-$shard.pid"
        if running_or_clean "$pidfile" run_ledger_writer; then
            log "ledger writer $shard already running (pid $(pid_of "$pidfile"))"
            continue
        fi
        log "starting ledger writer $shard (outbox partitions $shard, $((shard + 2)), ...)"
        nohup "$PY" "$ROOT/manage.py" run_ledger_writer --consumer "writer-$shard" \
            --shard "$shard/2" >>"$LOG_DIR/ledger-writer-$shard.log" 2>&1 </dev/null &
        echo $! >"$pidfile"
    done
}

# Celery worker consuming every queue the app uses.
start_worker() {
    if running_or_clean "$WORKER_PID" celery; then
        log "celery worker already running (pid $(pid_of "$WORKER_PID"))"
        return 0
    fi
    log "starting celery worker"
    "$VENV/bin/celery" --workdir "$ROOT" -A config.celery_app worker --detach \
        --pidfile "$WORKER_PID" --logfile "$LOG_DIR/celery-worker.log" --loglevel INFO \
        -Q celery,ledger,webhooks,clearing --concurrency 2
}

# Celery beat (periodic tasks); schedule state lives in var/run/.
start_beat() {
    if running_or_clean "$BEAT_PID" celery; then
        log "celery beat already running (pid $(pid_of "$BEAT_PID"))"
        return 0
    fi
    log "starting celery beat"
    "$VENV/bin/celery" --workdir "$ROOT" -A config.celery_app beat --detach \
        --pidfile "$BEAT_PID" --logfile "$LOG_DIR/celery-beat.log" --loglevel INFO \
        --schedule "$RUN_DIR/celerybeat-schedule"
}

# Wait up to 30 s for /healthz; show the gunicorn log if it never answers.
wait_healthy() {
    local i
    for ((i = 0; i < 30; i++)); do
        if pid_alive "$GUNICORN_PID" gunicorn &&
            curl -fsS --max-time 2 "$HEALTH_URL" >/dev/null 2>&1; then
            log "healthy: $HEALTH_URL"
            return 0
        fi
        sleep 1
    done
    curl -fsS --max-time 2 "$HEALTH_URL" >&2 || true
    echo "----- tail of $LOG_DIR/gunicorn.log -----" >&2
    tail -n 40 "$LOG_DIR/gunicorn.log" >&2 2>/dev/null || true
    die "gunicorn did not become healthy at $HEALTH_URL within 30 s"
}

# Warn if a detached Celery process did not stay up.
check_celery() {
    local pidfile name
    sleep 2
    for pidfile in "$WORKER_PID" "$BEAT_PID"; do
        name="$(basename "$pidfile" .pid)"
        pid_alive "$pidfile" celery ||
            warn "$name is not running; see $LOG_DIR/$name.log"
    done
}

main() {
    bash "$ROOT/scripts/bootstrap.sh"
    load_env
    bash "$ROOT/scripts/services.sh" start
    cd "$ROOT"
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    prepare_app
    # Every web worker and the writer share one metrics directory; /metrics sums it.
    export PROMETHEUS_MULTIPROC_DIR="$RUN_DIR/prometheus"
    if ! running_or_clean "$GUNICORN_PID" gunicorn; then
        rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    fi
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    start_ledger_writers
    if running_or_clean "$GUNICORN_PID" gunicorn; then
        log "gateway already serving: the Redis cache is live, not rebuilt"
    else
        log "loading the Redis balance cache from the ledger"
        manage rebuild_balance_cache
    fi
    start_gunicorn
    start_worker
    start_beat
    wait_healthy
    check_celery
    cat <<EOF

  Card program is running.
    Admin:    http://127.0.0.1:$WEB_PORT/admin/
    Gateway:  http://127.0.0.1:$WEB_PORT/jit/marqeta/  (Basic: $MARQETA_JIT_USERNAME / $MARQETA_JIT_PASSWORD)
    Metrics:  http://127.0.0.1:$WEB_PORT/metrics
    Health:   $HEALTH_URL
    Logs:     $LOG_DIR/
  The demo credentials and API token were printed above by 'manage.py seed_demo'.
  Stop everything with: make stop

EOF
}

main "$@"
