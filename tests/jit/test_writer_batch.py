"""The ledger writer's set-based path writes what `apply_event` one by one writes.

A realistic outbox (first authorizations approved and declined, a stand-in advice, an
incremental, a single-message capture, a reversal, approvals the ledger cannot cover) is
applied twice from the same events: one by one in a savepoint that is then rolled back, and
by `write_batch`. Decisions, holds, postings, balances and overdraft flags must be the same.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from cards.selectors import funding_account_for
from cards.services import deposit_funds
from jit import cache, keys
from jit.models import JitDecision
from jit.outbox import (
    Wallets,
    apply_event,
    drain_outbox,
    ensure_groups,
    read_batch,
    write_batch,
    write_plain_run,
)
from jit.redis_client import maintenance_redis
from ledger.models import Hold, HoldStatus, LedgerTransaction, NegativeBalance
from tests.cards.factories import CardFactory
from tests.jit.conftest import JSON, jit_body, put_in_cache
from tests.ledger.helpers import assert_ledger_consistent, balances

pytestmark = pytest.mark.django_db

OUTBOX = [
    {"token": "w-1", "amount": "30.00"},
    {"token": "w-2", "amount": "900.00"},  # declined: more than the cache holds
    {"token": "w-3", "amount": "20.00", "method": "pgfs.authorization.standin"},
    {"token": "w-4", "amount": "20.00", "method": "pgfs.authorization.incremental",
     "original": "w-1"},  # (an amount that makes the order of w-8 visible in its overdraft)
    {"token": "w-5", "amount": "5.00", "method": "pgfs.auth_plus_capture"},
    {"token": "w-6", "amount": "15.00"},
    {"token": "w-7", "amount": "15.00", "method": "pgfs.authorization.reversal",
     "original": "w-6"},
    {"token": "w-8", "amount": "60.00"},  # the ledger goes below zero here
    {"token": "w-9", "amount": "0.00"},
    {"token": "w-10", "amount": "12.00"},
]  # fmt: skip


class RolledBack(Exception):
    pass


def outbox_events(client, cards, auth) -> list:
    """OUTBOX for each card, interleaved (tokens prefixed a-, b-, ...)."""
    for card in cards:  # the cache believes in 200.00, the ledger has 100.00
        put_in_cache(card)
        cache.put_account(
            user_token=card.cardholder.token, available_minor=20_000, currency_code="USD"
        )
    for request in OUTBOX:
        for prefix, card in zip("abc", cards, strict=False):
            named = {**request, "token": f"{prefix}-{request['token']}"}
            if "original" in request:
                named["original"] = f"{prefix}-{request['original']}"
            client.post("/jit/marqeta/", jit_body(card, **named), content_type=JSON, **auth)
    redis_client = maintenance_redis()
    ensure_groups(redis_client)
    events = read_batch(redis_client, consumer="t", count=100, block_ms=0)
    assert len(events) == len(OUTBOX) * len(cards)
    return events


def ledger_state(wallets) -> dict:
    """What the writer wrote, keyed by tokens and idempotency keys (never by ids)."""
    return {
        "decisions": sorted(
            JitDecision.objects.values_list(
                "jit_funding_token", "outcome", "reason_code", "amount_minor",
                "hold__authorization_key", "ledger_error", "is_fallback",
            )
        ),
        "holds": sorted(
            Hold.objects.values_list(
                "authorization_key", "original__authorization_key", "amount_minor",
                "remaining_minor", "status", "is_standin", "expires_at", "card_token", "mcc",
                "merchant_name", "transaction_token", "jit_funding_token",
                "placed_by__idempotency_key",
            )
        ),
        "postings": sorted(
            (posting.idempotency_key, posting.kind, posting.actor, posting.memo)
            + tuple(sorted((e.account.kind, e.amount_minor) for e in posting.entries.all()))
            for posting in LedgerTransaction.objects.prefetch_related("entries__account")
        ),
        "balances": [balances(wallet) for wallet in wallets],
        "episodes": sorted(
            NegativeBalance.objects.values_list(
                "balance_minor", "opened_by__idempotency_key", "resolved_at"
            )
        ),
    }  # fmt: skip


def test_given_mixed_outbox_when_written_set_based_then_same_as_one_by_one(
    client, marqeta_auth, funded_card, caplog
):
    """Two cardholders interleaved: the waves reorder across cardholders, never within one."""
    other = CardFactory()
    deposit_funds(cardholder=other.cardholder, amount_minor=10_000, idempotency_key="o", actor="t")
    cards = [funded_card, other]
    holder_wallets = [funding_account_for(cardholder=card.cardholder).wallet for card in cards]
    events = outbox_events(client, cards, marqeta_auth)
    with pytest.raises(RolledBack), transaction.atomic():  # noqa: PT012 - the reference run
        wallets = Wallets()
        with CaptureQueriesContext(connection) as reference_statements:
            for event in events:
                apply_event(event, wallets)
        one_by_one = ledger_state(holder_wallets)
        raise RolledBack
    assert not JitDecision.objects.exists()
    with CaptureQueriesContext(connection) as statements:
        write_batch(maintenance_redis(), events)
    set_based = ledger_state(holder_wallets)
    assert set_based == one_by_one
    # and it was set-based: the three runs of first authorizations did not fall back
    assert len(statements) < len(reference_statements)
    assert "one by one" not in caplog.text
    assert set_based["episodes"], "the outbox should have overdrawn the ledger"
    assert len(set_based["decisions"]) == 2 * len(OUTBOX)
    assert_ledger_consistent()


def test_given_event_recorded_by_another_writer_when_run_written_then_one_by_one_once(
    client, marqeta_auth, card_in_cache, funded_wallet, caplog
):
    events = outbox_events(client, [card_in_cache], marqeta_auth)
    plain = [event for event in events if event.fields["jit"] in ("a-w-1", "a-w-6", "a-w-8")]
    apply_event(plain[1], Wallets())  # a writer that took over the stream got there first
    write_plain_run(plain, Wallets())  # the set is refused; each event is then applied once
    assert "3 plain events one by one" in caplog.text
    assert sorted(JitDecision.objects.values_list("jit_funding_token", flat=True)) == [
        "a-w-1", "a-w-6", "a-w-8",
    ]  # fmt: skip
    assert sorted(Hold.objects.values_list("amount_minor", flat=True)) == [1_500, 3_000, 6_000]
    assert balances(funded_wallet)[0] == 10_000 - 10_500
    assert_ledger_consistent()


def test_given_same_stream_id_in_two_partitions_when_written_then_each_event_judged_alone(
    client, marqeta_auth, funded_card
):
    """Stream ids are unique per stream only: an advice must not pass for an authorization of
    another partition that happens to carry the same id (found by `make bench-writer`)."""
    other = CardFactory()
    while keys.partition(other.cardholder.token) == keys.partition(funded_card.cardholder.token):
        other = CardFactory()
    deposit_funds(cardholder=other.cardholder, amount_minor=10_000, idempotency_key="o", actor="t")
    for card in (funded_card, other):
        put_in_cache(card)
    post = partial(client.post, content_type=JSON, **marqeta_auth)
    post("/jit/marqeta/", jit_body(funded_card, token="first", amount="10.00"))
    post("/jit/marqeta/", jit_body(other, token="held", amount="20.00"))
    drain_outbox()
    post(
        "/jit/marqeta/",
        jit_body(
            other,
            token="reversal",
            amount="20.00",
            method="pgfs.authorization.reversal",
            original="held",
        ),
    )
    post("/jit/marqeta/", jit_body(funded_card, token="second", amount="10.00"))
    redis_client = maintenance_redis()
    events = read_batch(redis_client, consumer="t", count=10, block_ms=0)
    reversal, second = sorted(events, key=lambda event: event.fields["jit"])
    twin = replace(second, event_id=reversal.event_id)  # the same id, in the other partition
    write_batch(redis_client, [reversal, twin])
    assert not Hold.objects.filter(authorization_key="jit:reversal").exists()
    assert Hold.objects.get(authorization_key="jit:held").status == HoldStatus.CLOSED
    assert Hold.objects.get(authorization_key="jit:second").amount_minor == 1_000
    assert_ledger_consistent()
