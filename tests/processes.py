"""Our own commands as separate processes on the test database and Redis (kill tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def process_env(**overrides: str) -> dict[str, str]:
    """The environment of a child process that uses this test's database and Redis."""
    database = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=(
            f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}"
        ),
        TEST_REDIS_URL=settings.REDIS_URL,
        **overrides,
    )
    return env


def start_writer(batch: int) -> subprocess.Popen:
    """`run_ledger_writer` as production runs it (SIGTERM or SIGKILL to stop it)."""
    return subprocess.Popen(  # noqa: S603 - our own command
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "run_ledger_writer",
            "--consumer",
            "writer-t",
            "--batch",
            str(batch),
            "--block-ms",
            "200",
        ],
        env=process_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_python(code: str) -> subprocess.CompletedProcess:
    """`manage.py shell -c code` in a child process; its exit status is the caller's to judge."""
    return subprocess.run(  # noqa: S603 - our own command
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code],
        env=process_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
