"""The development values `.env.example` ships: known to everyone who has the repository.

Kept apart from `production.py` so that tests (and tools) can read them without loading the
production settings, which refuse to load with these very values.
"""

from __future__ import annotations

from config.env import BASE_DIR

SHIPPED_ENV_FILE = BASE_DIR / ".env.example"


def shipped_values() -> dict[str, str]:
    """`NAME=value` lines of `.env.example`."""
    if not SHIPPED_ENV_FILE.exists():
        return {}
    lines = SHIPPED_ENV_FILE.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}
