#!/usr/bin/env bash
# Run a Django management command with .env loaded and services started,
# e.g. `scripts/manage.sh shell` (used by `make shell`).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    [[ -x "$PY" ]] || bash "$ROOT/scripts/bootstrap.sh"
    load_env
    bash "$ROOT/scripts/services.sh" start
    cd "$ROOT"
    exec "$PY" manage.py "$@"
}

main "$@"
