"""Fixtures of the admin tests: logged-in clients and a card with a history made through the
gateway (JIT requests, then the ledger writer), as in production."""

from __future__ import annotations

import pytest
from django.test import Client

from cards import services
from jit.outbox import drain_outbox
from jit.redis_client import reset_clients
from tests.jit import conftest as jit_fixtures
from tests.jit.conftest import JSON, jit_body

# The gateway's fixtures: Marqeta's credentials, a funded card in Redis.
marqeta_auth = jit_fixtures.marqeta_auth
card_in_cache = jit_fixtures.card_in_cache


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def authorize(client: Client, auth: dict, card, token: str, amount: str, **fields) -> int:
    """A JIT authorization through the real gateway view; the HTTP status (200 or 402)."""
    body = jit_body(card, token=token, amount=amount, **fields)
    return client.post("/jit/marqeta/", body, content_type=JSON, **auth).status_code


@pytest.fixture
def patient_gateway(settings):
    """A gateway Redis timeout of 1 s instead of 50 ms: these tests set up rows through
    hundreds of JIT requests and test pages, not the breaker, so a slow moment of a busy
    machine must not send a request to the stand-in policy."""
    settings.JIT_REDIS_TIMEOUT_MS = 1_000
    reset_clients()
    yield
    reset_clients()  # the next test's client is made with its own settings


@pytest.fixture
def daily_limit_30(card_in_cache, django_capture_on_commit_callbacks):
    """A card-level daily spend limit of 30.00, pushed to the gateway."""
    with django_capture_on_commit_callbacks(execute=True):
        return services.set_velocity_limit(
            scope_obj=card_in_cache, window="day", max_amount_minor=3_000, actor=None,
            reason="test",
        )  # fmt: skip


@pytest.fixture
def card_with_decline(client, marqeta_auth, card_in_cache, daily_limit_30):
    """20.00 approved, then 15.00 declined by the daily limit (10.00 of 30.00 left)."""
    assert authorize(client, marqeta_auth, card_in_cache, "hist-1", "20.00") == 200
    assert authorize(client, marqeta_auth, card_in_cache, "hist-2", "15.00") == 402
    drain_outbox()
    return card_in_cache
