"""The ledger writer: every approval reaches the ledger exactly once, even after a SIGKILL."""

from __future__ import annotations

import signal
import time

import pytest

from cards.services import deposit_funds
from jit import cache, keys
from jit.models import JitDecision
from jit.outbox import GROUP, drain_outbox, ensure_groups, outbox_lag, read_batch
from jit.redis_client import maintenance_redis
from ledger.models import Hold, HoldStatus
from tests.cards.factories import CardFactory
from tests.jit.conftest import JSON, jit_body, put_in_cache
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.processes import start_writer


def post(client, card, auth, **kwargs):
    return client.post("/jit/marqeta/", jit_body(card, **kwargs), content_type=JSON, **auth)


@pytest.mark.django_db
def test_given_decisions_when_outbox_drained_then_recorded_and_held_once(
    client, marqeta_auth, card_in_cache, funded_wallet
):
    post(client, card_in_cache, marqeta_auth, token="jit-1", amount="30.00")
    post(client, card_in_cache, marqeta_auth, token="jit-2", amount="90.00")  # declined
    post(client, card_in_cache, marqeta_auth, token="jit-3", amount="20.00")
    # when
    written = drain_outbox()
    again = drain_outbox()
    # then
    assert (written, again) == (3, 0)
    decisions = {d.jit_funding_token: d for d in JitDecision.objects.all()}
    assert decisions["jit-2"].outcome == "declined"
    assert decisions["jit-2"].decline_reason == "INSUFFICIENT_FUNDS"
    assert decisions["jit-1"].hold.amount_minor == 3_000
    assert decisions["jit-1"].latency_us >= 0
    assert balances(funded_wallet) == (5_000, 5_000)
    assert cache.cached_available(user_token=card_in_cache.cardholder.token) == 5_000
    assert_ledger_consistent()


@pytest.mark.django_db
def test_given_backlog_on_many_streams_when_read_then_count_per_stream_and_each_written_once(
    client, marqeta_auth
):
    cards = [CardFactory() for _ in range(3)]
    for card in cards:
        deposit_funds(
            cardholder=card.cardholder, amount_minor=10_000, idempotency_key=card.token, actor="t"
        )
        put_in_cache(card)
        for n in range(5):
            post(client, card, marqeta_auth, token=f"jit-{card.token}-{n}", amount="1.00")
    streams = {keys.outbox_key(keys.partition(card.cardholder.token)) for card in cards}
    redis_client = maintenance_redis()
    ensure_groups(redis_client)
    first_read = read_batch(redis_client, consumer="t", count=2, block_ms=0)
    assert len(first_read) == 2 * len(streams)  # XREADGROUP's COUNT is per stream
    # when: everything drained two events a transaction (the read's pending events first)
    written = drain_outbox(consumer="t", count=2)
    # then
    assert written == 15
    assert JitDecision.objects.count() == Hold.objects.count() == 15
    assert outbox_lag(redis_client) == 0
    assert_ledger_consistent()


@pytest.mark.django_db
def test_given_incremental_and_reversal_when_drained_then_ledger_chain_matches(
    client, marqeta_auth, card_in_cache, funded_wallet
):
    post(client, card_in_cache, marqeta_auth, token="jit-a-auth", amount="50.00")
    post(
        client,
        card_in_cache,
        marqeta_auth,
        token="jit-a-incr",
        amount="10.00",
        method="pgfs.authorization.incremental",
        original="jit-a-auth",
    )
    post(
        client,
        card_in_cache,
        marqeta_auth,
        token="jit-a-rev",
        amount="60.00",
        method="pgfs.authorization.reversal",
        original="jit-a-auth",
    )
    # when
    drain_outbox()
    # then
    incremental = Hold.objects.get(authorization_key="jit:jit-a-incr")
    assert incremental.original.authorization_key == "jit:jit-a-auth"
    assert set(Hold.objects.values_list("status", flat=True)) == {HoldStatus.CLOSED}
    assert balances(funded_wallet) == (10_000, 0)
    assert cache.cached_available(user_token=card_in_cache.cardholder.token) == 10_000
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
def test_given_writer_killed_mid_batch_when_restarted_then_every_approval_held_exactly_once(
    client, marqeta_auth, card_in_cache, funded_wallet
):
    # given: 300 approvals of 0.10 waiting in the outbox
    for n in range(300):
        post(client, card_in_cache, marqeta_auth, token=f"jit-k{n}", amount="0.10")
    writer = start_writer(batch=100)
    deadline = time.monotonic() + 60
    while JitDecision.objects.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.005)  # the first batch committed: the writer is inside the next one
    # when: SIGKILL, then a restart under the same consumer name
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    pending = maintenance_redis().xpending_range(
        _stream(card_in_cache), GROUP, min="-", max="+", count=1000
    )
    restarted = start_writer(batch=100)
    deadline = time.monotonic() + 60
    while JitDecision.objects.count() < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    restarted.send_signal(signal.SIGTERM)
    restarted.wait(timeout=10)
    # then
    print(f"pending after the kill: {len(pending)}")
    assert JitDecision.objects.count() == 300
    assert Hold.objects.count() == 300
    assert balances(funded_wallet) == (10_000 - 3_000, 3_000)
    assert_ledger_consistent()


def _stream(card) -> str:
    from jit.keys import outbox_key, partition

    return outbox_key(partition(card.cardholder.token))
