"""Fixtures for the gateway: Marqeta's credentials, payloads in its format, cards in the cache."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest
from django.conf import settings

from cards.selectors import funding_account_for
from jit import cache
from jit.redis_client import gateway_redis
from jit.sync import push_cards

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "marqeta"
JSON = "application/json"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def marqeta_auth() -> dict[str, str]:
    return {
        "HTTP_AUTHORIZATION": basic(settings.MARQETA_JIT_USERNAME, settings.MARQETA_JIT_PASSWORD)
    }


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def jit_body(
    card,
    *,
    token: str,
    amount: str = "12.34",
    method: str = "pgfs.authorization",
    fixture: str = "jit_authorization",
    original: str | None = None,
    **top_level: object,
) -> str:
    """A Marqeta JIT request (MARQETA.md Example 1) for `card`; amount stays a JSON number."""
    body = copy.deepcopy(load_fixture(fixture))
    user = card.cardholder.token
    body.update(
        user_token=user,
        acting_user_token=user,
        card_token=card.token,
        token=f"txn-{token}",
        **top_level,
    )
    funding = body["gpa_order"]["jit_funding"]
    funding.update(token=token, method=method, user_token=user, acting_user_token=user)
    funding["amount"] = "__AMOUNT__"
    if original:
        funding["original_jit_funding_token"] = original
    else:
        funding.pop("original_jit_funding_token", None)
    return json.dumps(body).replace('"__AMOUNT__"', amount)


def put_in_cache(card) -> None:
    """What the commit hooks do in production: the account balance and the card record."""
    wallet = funding_account_for(cardholder=card.cardholder).wallet
    wallet.available.refresh_from_db()
    cache.put_account(
        user_token=card.cardholder.token,
        available_minor=wallet.available.balance_minor,
        currency_code=wallet.currency_code,
    )
    push_cards(card_ids=[card.pk])
    cache.load_scripts()


@pytest.fixture
def card_in_cache(funded_card):
    """A card with 100.00 available, loaded into Redis."""
    put_in_cache(funded_card)
    return funded_card


@pytest.fixture
def redis_commands(monkeypatch) -> list[str]:
    """Names of the commands the gateway's Redis client sends."""
    sent: list[str] = []
    client = gateway_redis()
    original = client.execute_command

    def recording(*args, **kwargs):
        sent.append(str(args[0]).upper())
        return original(*args, **kwargs)

    monkeypatch.setattr(client, "execute_command", recording)
    return sent
