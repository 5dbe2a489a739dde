"""The worker lane: a real `celery worker` process, and MARQETA.md §11's card (reused from the
reconciliation fixtures)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.processes import process_env
from tests.reconciliation.conftest import week_card, week_wallet  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clearing_inbox(tmp_path) -> Path:
    """The worker's `CLEARING_INBOX_URL`: a directory of this test's own, never `var/`."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return inbox


@pytest.fixture
def celery_worker(clearing_inbox):
    """`celery worker` on every queue, against the test database, a broker database of its own
    and the test's clearing inbox."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    env = process_env(
        TEST_CELERY_BROKER_URL=settings.CELERY_BROKER_URL, CLEARING_INBOX_URL=str(clearing_inbox)
    )
    worker = subprocess.Popen(  # noqa: S603 - our own worker
        [shutil.which("celery", path=str(ROOT / ".venv" / "bin")) or "celery",
         "-A", "config.celery_app", "worker", "-Q", "celery,webhooks,clearing", "--pool", "solo",
         "--concurrency", "1", "--loglevel", "WARNING", "-n", f"test-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    yield worker
    worker.terminate()
    worker.wait(timeout=20)
    broker.flushdb()
