"""Fixtures for the fake Marqeta: a program, cards in Marqeta's eyes, the platform run inline."""

from __future__ import annotations

import contextlib

import pytest

from cards.selectors import funding_account_for
from cards.services import create_program, deposit_funds
from jit.outbox import drain_outbox
from jit.simulator.merchants import MERCHANTS
from jit.simulator.payloads import SimCard
from jit.simulator.platform import LivePlatform
from jit.simulator.scenario import Tokens, new_facts, seeded
from reconciliation import services, tasks
from reconciliation.errors import ParentNotYetKnown
from reconciliation.models import WebhookEvent
from tests.cards.factories import CardFactory
from tests.jit.conftest import put_in_cache

PENDING = [WebhookEvent.Status.RECEIVED, WebhookEvent.Status.WAITING]


class InlinePlatform(LivePlatform):
    """The ledger writer and the Celery worker's work, done here when the simulator waits."""

    def wait_for_ledger_writer(self, *, timeout: float) -> None:
        drain_outbox()

    def settle(self, tokens: list[str], *, timeout: float) -> dict[str, str]:
        for _ in range(10):  # a child waits for its parent: a second pass applies it
            pending = list(WebhookEvent.objects.filter(token__in=tokens, status__in=PENDING))
            if not pending:
                break
            for event in pending:
                with contextlib.suppress(ParentNotYetKnown):
                    services.apply_webhook_event(event=event)
        return super().settle(tokens, timeout=0)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> list[int]:
    """Webhook events are applied by `InlinePlatform.settle`, not by a worker."""
    queued: list[int] = []
    monkeypatch.setattr(tasks.apply_webhook_event_task, "delay", queued.append)
    return queued


@pytest.fixture
def program(db):
    return create_program(name="demo", currency_code="USD", timezone_name="UTC")


@pytest.fixture
def sim_card(db) -> SimCard:
    """A real card with 500.00 in the cache, and how Marqeta knows it."""
    card = CardFactory(token="card_91b2", cardholder__token="user_7f3a", last_four="6491")
    deposit_funds(
        cardholder=card.cardholder, amount_minor=50_000, idempotency_key="seed", actor="test"
    )
    put_in_cache(card)
    wallet = funding_account_for(cardholder=card.cardholder).wallet
    return SimCard(
        index=0,
        user_token=card.cardholder.token,
        card_token=card.token,
        last_four=card.last_four,
        currency_code=wallet.currency_code,
        program=card.cardholder.program.name,
        network="VISA",
        street_address="1 MAIN ST",
        postal_code="94607",
    )


@pytest.fixture
def tokens() -> Tokens:
    return Tokens("test01")


def merchant(mcc: str):
    return next(m for m in MERCHANTS if m.mcc == mcc)


@pytest.fixture
def car_rental_facts(sim_card):
    return new_facts(
        seeded(1), card=sim_card, merchant=merchant("7512"), funding_source_token="pgfs_main"
    )
