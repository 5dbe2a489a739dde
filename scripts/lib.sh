# shellcheck shell=bash
# Shared settings and helpers, sourced by the other scripts in scripts/.
# Nothing here has side effects beyond setting variables and reading .env.
# (Its variables are used by the sourcing scripts, hence SC2034 is off.)
# shellcheck disable=SC2034

# Repository layout, derived from this file's location (works from any cwd).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="$ROOT/var"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
RUN_DIR="$VAR/run"
LOG_DIR="$VAR/log"

# OS account that owns and runs PostgreSQL (postgres refuses to run as root).
PG_OS_USER="${PG_OS_USER:-cardpg}"

# Log helpers: everything goes to stderr, prefixed with the calling script.
_log_tag="$(basename "${0:-lib.sh}" .sh)"
log() { printf '[%s] %s\n' "$_log_tag" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$_log_tag" "$*" >&2; }
die() {
    printf '[%s] ERROR: %s\n' "$_log_tag" "$*" >&2
    exit 1
}

# Export KEY=VALUE lines from $ROOT/.env. Blank lines and comments are
# skipped, an optional leading "export " and matching outer quotes are
# stripped. Variables already set in the environment win over .env.
load_env() {
    local file="$ROOT/.env" line key value
    [[ -f "$file" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line%$'\r'}"
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        line="${line#"${line%%[![:space:]]*}"}"
        line="${line#export }"
        [[ "$line" == *=* ]] || continue
        key="${line%%=*}"
        value="${line#*=}"
        [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || {
            warn ".env: ignoring invalid line for key '$key'"
            continue
        }
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
            value="${BASH_REMATCH[1]}"
        fi
        [[ -n "${!key+x}" ]] && continue
        export "$key=$value"
    done <"$file"
}

# True if process $1 exists and is not a zombie (exited, not yet reaped).
proc_running() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [[ -n "$state" && "$state" != Z ]]
}

# True if the pid in pidfile $1 is running (and, if $2 is given, its command
# line contains $2 — guards against a recycled pid in a stale file).
pid_alive() {
    local pidfile="$1" pattern="${2:-}" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" ]] && proc_running "$pid" || return 1
    [[ -z "$pattern" ]] && return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

# Print the pid stored in pidfile $1 (digits only).
pid_of() { tr -dc '0-9' <"$1" 2>/dev/null || true; }

# Directory holding the newest installed PostgreSQL server binaries.
pg_bin_dir() {
    local dir
    if [[ -n "${PG_BIN:-}" ]]; then
        printf '%s\n' "$PG_BIN"
        return 0
    fi
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$dir" && -x "$dir/initdb" ]] || return 1
    printf '%s\n' "$dir"
}

# Run a command as root, via sudo when we are not root already.
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Install postgresql / redis-server (and curl, used by run.sh) if missing.
ensure_packages() {
    local missing=()
    pg_bin_dir >/dev/null || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v curl >/dev/null || missing+=(curl)
    ((${#missing[@]} == 0)) && return 0
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

# .env may set the ports too, so read it before applying the defaults.
load_env
PG_PORT="${PG_PORT:-55432}"
REDIS_PORT="${REDIS_PORT:-56379}"
WEB_PORT="${WEB_PORT:-8000}"
export PG_PORT REDIS_PORT WEB_PORT
