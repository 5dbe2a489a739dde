#!/usr/bin/env bash
# Idempotent developer/CI setup: Debian packages, virtualenv, .env.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Create .venv if absent; reinstall requirements only when the file changed.
ensure_venv() {
    local req="$ROOT/requirements.txt" stamp="$VENV/.requirements.sha256" sum
    if [[ ! -x "$PY" ]]; then
        log "creating virtualenv in $VENV"
        "${PYTHON:-python3}" -m venv "$VENV" ||
            die "python3 -m venv failed (on Debian system Python: apt-get install python3-venv)"
    fi
    if [[ ! -f "$req" ]]; then
        warn "no requirements.txt yet; skipping pip install"
        return 0
    fi
    sum="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
        return 0
    fi
    log "installing requirements.txt into $VENV"
    "$PY" -m pip install -r "$req"
    printf '%s\n' "$sum" >"$stamp"
}

# Create .env from .env.example the first time (never overwrite it).
ensure_dotenv() {
    [[ -f "$ROOT/.env" ]] && return 0
    [[ -f "$ROOT/.env.example" ]] || die ".env.example is missing"
    cp "$ROOT/.env.example" "$ROOT/.env"
    chmod 600 "$ROOT/.env"
    log "created .env from .env.example"
}

# Debian's Chromium for the browser tests (tests/browser/): Playwright launches this binary
# and never downloads a browser of its own. Without it those tests are skipped, so on CI a
# failed install is an error.
ensure_chromium() {
    [[ -x /usr/bin/chromium ]] && return 0
    log "installing Debian package: chromium (for the browser tests)"
    if as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y chromium; then
        return 0
    fi
    [[ -n "${CI:-}" ]] && die "could not install chromium: the browser tests need it on CI"
    warn "could not install chromium: tests/browser/ will be skipped"
}

main() {
    ensure_packages
    ensure_chromium
    ensure_venv
    ensure_dotenv
    mkdir -p "$RUN_DIR" "$LOG_DIR"
}

main "$@"
