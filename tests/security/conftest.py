"""Fixtures of the security suite: each caller's credentials, MARQETA.md's demo card, and a
digest of everything a request could write, so a refusal can be shown to have written nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter

import pytest
import redis
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from rest_framework.authtoken.models import Token

from tests.admin.conftest import card_in_cache, card_with_decline, daily_limit_30, marqeta_auth
from tests.admin.test_support_read_only import one_of_everything
from tests.jit.conftest import basic
from tests.reconciliation.conftest import CARD, USER, week_card

# A row in nearly every admin model, made as production makes them (tests/admin).
__all__ = ["card_in_cache", "card_with_decline", "daily_limit_30", "marqeta_auth"]
__all__ += ["one_of_everything", "week_card"]

# Hypothesis examples per fuzzed operation. The default keeps `make test` within ~60 s more;
# `make reliability` sets FUZZ_EXAMPLES higher for a longer run.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))

# What the fuzzer sent, by "METHOD path" and answer status, and the requests of the
# credential sweep by caller: printed at the end of the run, quoted in docs/security.md.
FUZZ_TALLY: Counter[tuple[str, int]] = Counter()
SWEPT: Counter[str] = Counter()

# Every table a request could write to: the four apps and the API tokens.
WRITABLE_APPS = ("ledger", "cards", "jit", "reconciliation", "authtoken", "auth")

# MARQETA.md §11's cardholder and card, so the schema's example request reaches a real card.
DEMO_USER, DEMO_CARD = USER, CARD


def jit_basic() -> str:
    return basic(settings.MARQETA_JIT_USERNAME, settings.MARQETA_JIT_PASSWORD)


def webhook_basic() -> str:
    return basic(settings.MARQETA_WEBHOOK_USERNAME, settings.MARQETA_WEBHOOK_PASSWORD)


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(username="sec-admin", password="x-12345678")


@pytest.fixture
def superuser_token(superuser) -> str:
    """The API token of a superuser: every method of every API view is allowed."""
    return Token.objects.create(user=superuser).key


@pytest.fixture
def demo_card(week_card):
    """Ada's card of MARQETA.md §11 with 250.00 available, in the gateway's cache."""
    return week_card


@pytest.fixture
def in_process_wsgi():
    """Django's WSGI handler without its end-of-request connection close, as the test client
    does: closing would end the test's transaction (and its rollback) after the first call."""
    from django.core.wsgi import get_wsgi_application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _tables() -> list[str]:
    return sorted(
        model._meta.db_table
        for label in WRITABLE_APPS
        for model in apps.get_app_config(label).get_models()
        if not model._meta.proxy
    )


def database_digest() -> str:
    """One hash of every row of every writable table, in one query."""
    columns = ", ".join(
        f"(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t)"  # noqa: S608 - names from the models
        for table in map(connection.ops.quote_name, _tables())
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns}")
        return hashlib.sha256("".join(cursor.fetchone()).encode()).hexdigest()


def redis_digest() -> str:
    """One hash of every key and value of the gateway's Redis database (the test's own)."""
    client = redis.Redis.from_url(settings.REDIS_URL)  # bytes: DUMP is binary
    digest = hashlib.sha256()
    for key in sorted(client.scan_iter(count=1_000)):
        digest.update(key + b"=" + (client.dump(key) or b""))
    return digest.hexdigest()


def written_state() -> tuple[str, str]:
    """What PostgreSQL and Redis hold: equal before and after means nothing was written."""
    return database_digest(), redis_digest()


def pytest_terminal_summary(terminalreporter: object) -> None:
    """The figures docs/security.md quotes: requests per fuzzed operation, per swept caller."""
    write = terminalreporter.write_line
    if SWEPT:
        write(f"credential sweep: {SWEPT.total()} refused requests")
        for caller, count in sorted(SWEPT.items()):
            write(f"  {caller}: {count}")
    if not FUZZ_TALLY:
        return
    write(f"schema fuzzing: {FUZZ_TALLY.total()} requests (FUZZ_EXAMPLES={FUZZ_EXAMPLES})")
    for operation in sorted({operation for operation, _ in FUZZ_TALLY}):
        statuses = {status: n for (name, status), n in FUZZ_TALLY.items() if name == operation}
        answers = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        write(f"  {operation}: {sum(statuses.values())} ({answers})")
