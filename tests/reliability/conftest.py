"""One private stack for the whole session; the long variants only when asked for.

`make test` runs the fast variant of each scenario (a couple of minutes, the stack's startup
included). The variants marked `slow` (minutes of load, a minute without PostgreSQL) are
deselected unless RELIABILITY_FULL=1, which `make reliability` (scripts/reliability.sh) sets.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.reliability.profile import FAST, FULL, Profile, from_env, full_requested
from tests.reliability.stack import Stack, running_stack

COLD_ACCOUNTS = {False: 100, True: 2_000}  # the full run spreads load over more cardholders


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect this package's slow variants unless RELIABILITY_FULL=1."""
    if full_requested():
        return
    here = os.path.dirname(__file__)
    slow = [i for i in items if i.get_closest_marker("slow") and str(i.path).startswith(here)]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


@pytest.fixture(
    params=[pytest.param(FAST, id="fast"), pytest.param(FULL, id="full", marks=pytest.mark.slow)]
)
def profile(request: pytest.FixtureRequest) -> Profile:
    return from_env(request.param)


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """Overrides the root conftest's: these tests never use the test Redis database (on the
    shared server), so they must not flush it under another suite running beside them."""


@pytest.fixture(scope="package")
def private_stack() -> Iterator[Stack]:
    """Started once: PostgreSQL, Redis, gunicorn, two ledger writers, a Celery worker."""
    keep = os.environ.get("RELIABILITY_KEEP") == "1"  # leave the logs in /tmp/cardrel-*
    with running_stack(cold_accounts=COLD_ACCOUNTS[full_requested()], keep=keep) as stack:
        yield stack


@pytest.fixture
def stack(private_stack: Stack) -> Stack:
    """The session's stack, whole again: whatever a failed scenario left dead is restarted."""
    if restarted := private_stack.ensure_running():
        print(f"restarted before this scenario: {', '.join(restarted)}")
    return private_stack


@pytest.fixture
def run_id() -> str:
    """A short token prefix per test (jit_funding.token is at most 36 characters)."""
    return secrets.token_hex(3)
