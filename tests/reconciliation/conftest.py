"""Fixtures for webhooks: MARQETA.md §11's cast (user_7f3a, card_91b2, 250.00 USD), Marqeta's
payloads read with Decimal numbers, decisions made by the real gateway and ledger writer."""

from __future__ import annotations

import copy
import hashlib
import hmac
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import simplejson
from django.conf import settings
from django.test import TestCase

from cards.selectors import funding_account_for
from cards.services import deposit_funds
from jit.models import JitDecision
from jit.outbox import drain_outbox
from ledger.models import Wallet
from reconciliation import services, tasks
from reconciliation.models import WebhookEvent
from tests.cards.factories import CardFactory
from tests.jit.conftest import basic, put_in_cache

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "marqeta"
JSON = "application/json"
USER, CARD = "user_7f3a", "card_91b2"


def load(name: str) -> dict[str, Any]:
    """A fixture with its numbers as Decimal, as Marqeta's JSON means them."""
    return simplejson.loads((FIXTURES / f"{name}.json").read_text(), use_decimal=True)


def dumps(document: dict[str, Any]) -> bytes:
    return simplejson.dumps(document, use_decimal=True).encode()


def transaction(name: str, *, jit: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """The first transaction of fixture `name`, with top-level and jit_funding overrides."""
    event = copy.deepcopy(load(name)["transactions"][0])
    event.update({key: Decimal(value) if key == "amount" else value for key, value in top.items()})
    if jit:
        order = event.get("gpa_order") or event["gpa_order_unload"]
        funding = order["jit_funding"]
        funding.update(
            {key: Decimal(value) if key == "amount" else value for key, value in jit.items()}
        )
    return event


def envelope(*events: dict[str, Any]) -> bytes:
    return dumps({"transactions": list(events)})


def signed(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[int]:
    """Event ids the on-commit hook queued. Nothing reaches a broker: the test runs tasks."""
    queued: list[int] = []
    monkeypatch.setattr(tasks.apply_webhook_event_task, "delay", queued.append)
    return queued


@pytest.fixture
def webhook_auth() -> dict[str, str]:
    return {
        "HTTP_AUTHORIZATION": basic(
            settings.MARQETA_WEBHOOK_USERNAME, settings.MARQETA_WEBHOOK_PASSWORD
        )
    }


@pytest.fixture
def jit_auth() -> dict[str, str]:
    return {
        "HTTP_AUTHORIZATION": basic(settings.MARQETA_JIT_USERNAME, settings.MARQETA_JIT_PASSWORD)
    }


@pytest.fixture
def week_card(db):
    """MARQETA.md §11: card_91b2 of user_7f3a, 250.00 USD available, loaded into Redis."""
    card = CardFactory(token=CARD, cardholder__token=USER, last_four="6491")
    deposit_funds(
        cardholder=card.cardholder, amount_minor=25_000, idempotency_key="seed", actor="t"
    )
    put_in_cache(card)
    return card


@pytest.fixture
def week_wallet(week_card) -> Wallet:
    return funding_account_for(cardholder=week_card.cardholder).wallet


def settled(wallet: Wallet) -> int:
    """What the program owes the network for this wallet's clearings (one wallet per test)."""
    wallet.book.settlement_payable.refresh_from_db()
    return wallet.book.settlement_payable.balance_minor


def jit_request(
    *,
    txn: str,
    jit: str,
    amount: str,
    method: str = "pgfs.authorization",
    original: str = "",
    preceding: str = "",
    mcc: str = "7512",
    merchant: str = "SUNSET CAR RENTAL",
) -> bytes:
    """A JIT funding request shaped like MARQETA.md Example 1 (or 4 with `original`)."""
    body = load("jit_authorization")
    body.update(token=txn, amount=Decimal(amount), request_amount=Decimal(amount))
    body["card_acceptor"].update(mcc=mcc, name=merchant)
    funding = body["gpa_order"]["jit_funding"]
    funding.update(token=jit, method=method, amount=Decimal(amount))
    if original:
        funding["original_jit_funding_token"] = original
        body["type"] = "authorization.incremental"
    if preceding:
        body["preceding_related_transaction_token"] = preceding
    return dumps(body)


def ask_gateway(client, jit_auth, **kwargs: Any):
    """Marqeta asks our gateway; the decision waits in the outbox until it is drained."""
    return client.post("/jit/marqeta/", jit_request(**kwargs), content_type=JSON, **jit_auth)


def approve(client, jit_auth, **kwargs: Any) -> JitDecision:
    """The gateway approves and the ledger writer records the decision and the hold."""
    response = ask_gateway(client, jit_auth, **kwargs)
    assert response.status_code == 200, response.content
    with committed():
        drain_outbox()
    return JitDecision.objects.get(jit_funding_token=kwargs["jit"])


def store(*events: dict[str, Any]) -> list[WebhookEvent]:
    """Events recorded as the webhook view would (for tests of the apply step)."""
    return services.record_webhook_envelope(body=envelope(*events)).stored


def committed() -> Any:
    """Run the on-commit hooks (the Redis cache pushes, the task queueing) as a commit would."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def receive(event: dict[str, Any]) -> WebhookEvent:
    """Store one event and apply it once (it must not be left waiting)."""
    with committed():
        (stored,) = store(event)
    with committed():
        return services.apply_webhook_event(event=stored)
