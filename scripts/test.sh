#!/usr/bin/env bash
# `make test` (and CI): bootstrap, services, lint, then pytest "$@".
# Exits with pytest's exit code; a lint failure stops before the tests.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    # CI has no (or a closed) stdin: give every child a harmless one.
    [[ -t 0 ]] || exec </dev/null
    bash "$ROOT/scripts/bootstrap.sh"
    load_env
    # pytest-django takes the settings module from pyproject.toml
    # (config.settings.test); an exported one would win over it.
    unset DJANGO_SETTINGS_MODULE
    bash "$ROOT/scripts/services.sh" start
    cd "$ROOT"
    log "ruff format --check . && ruff check ."
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/ruff" check .
    log "pytest $*"
    exec "$VENV/bin/pytest" "$@"
}

main "$@"
