#!/usr/bin/env bash
# `make stop`: stop gunicorn, Celery worker and beat, then PostgreSQL/Redis.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# TERM the process in pidfile $2 (named $1, cmdline must contain $3),
# KILL it after 10 s, and remove the pid file.
stop_pidfile() {
    local name="$1" pidfile="$2" pattern="$3" pid i
    if ! pid_alive "$pidfile" "$pattern"; then
        [[ -e "$pidfile" ]] && log "removing stale $pidfile"
        rm -f "$pidfile"
        log "$name not running"
        return 0
    fi
    pid="$(pid_of "$pidfile")"
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        proc_running "$pid" || break
        sleep 0.5
    done
    if proc_running "$pid"; then
        warn "$name did not exit after 10 s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

main() {
    stop_pidfile gunicorn "$RUN_DIR/gunicorn.pid" gunicorn
    stop_pidfile "ledger writer 0" "$RUN_DIR/ledger-writer-0.pid" run_ledger_writer
    stop_pidfile "ledger writer 1" "$RUN_DIR/ledger-writer-1.pid" run_ledger_writer
    stop_pidfile "celery worker" "$RUN_DIR/celery-worker.pid" celery
    stop_pidfile "celery beat" "$RUN_DIR/celery-beat.pid" celery
    bash "$ROOT/scripts/services.sh" stop
}

main "$@"
