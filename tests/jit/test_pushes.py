"""A ledger change reaches the Redis cache even when the process dies right after the commit."""

from __future__ import annotations

import signal
import time

import pytest

from jit import cache, pushes
from jit.drift import find_drift
from jit.models import PendingCachePush
from jit.redis_client import maintenance_redis
from jit.selectors import pending_count
from jit.sync import rebuild_balance_cache
from tests.ledger.helpers import balances
from tests.processes import run_python, start_writer

pytestmark = pytest.mark.django_db(transaction=True)

# A deposit in another process that is SIGKILLed by the first commit hook: the ledger has the
# money, the cache push registered after it never runs.
DEPOSIT_THEN_DIE = """
import os, signal
from django.db import transaction
from cards.models import Cardholder
from cards.services import deposit_funds
with transaction.atomic():
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    deposit_funds(
        cardholder=Cardholder.objects.get(token="{user}"), amount_minor={amount},
        idempotency_key="{key}", actor="ops:test",
    )
"""


def deposit_then_die(card, *, amount_minor: int, key: str = "killed") -> None:
    user = card.cardholder.token
    died = run_python(DEPOSIT_THEN_DIE.format(user=user, amount=amount_minor, key=key))
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]


def cached(card) -> int | None:
    return cache.cached_available(user_token=card.cardholder.token)


def test_given_process_killed_after_commit_when_swept_then_cache_catches_up_once(
    card_in_cache, funded_wallet
):
    deposit_then_die(card_in_cache, amount_minor=2_500)
    # the ledger has it, Redis does not, and the drift check knows why
    assert balances(funded_wallet)[0] == 12_500
    assert cached(card_in_cache) == 10_000
    assert pending_count() == 1  # the writers' `jit_cache_pushes_pending` gauge
    assert find_drift(settle_seconds=0) == []
    # a recent row is a live push still on its way: left alone
    assert pushes.push_overdue() == 0
    assert pushes.push_overdue(older_than_seconds=0) == 1
    assert cached(card_in_cache) == 12_500
    assert pushes.push_overdue(older_than_seconds=0) == 0
    assert cached(card_in_cache) == 12_500
    assert not PendingCachePush.objects.exists()


def test_given_push_done_but_row_left_when_swept_then_balance_moves_once(card_in_cache):
    # killed between the push and the delete: the row outlives a push Redis already applied
    move = cache.AvailableMove(
        user_token=card_in_cache.cardholder.token, ledger_key="deposit:once", delta_minor=700
    )
    cache.apply_available_moves([move])
    PendingCachePush.objects.create(moves=[[move.user_token, move.ledger_key, 700]])
    pushes.push_overdue(older_than_seconds=0)
    assert cached(card_in_cache) == 10_700
    assert not PendingCachePush.objects.exists()


def test_given_moves_left_behind_when_ledger_writer_runs_then_it_pushes_them(
    card_in_cache, funded_wallet
):
    deposit_then_die(card_in_cache, amount_minor=1_234)
    writer = start_writer(batch=100)
    try:
        deadline = time.monotonic() + 60
        while PendingCachePush.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=30)
    assert not PendingCachePush.objects.exists()
    assert cached(card_in_cache) == balances(funded_wallet)[0] == 11_234


def test_given_rows_pending_when_cache_rebuilt_then_counted_once(card_in_cache, funded_wallet):
    deposit_then_die(card_in_cache, amount_minor=900)
    [pending] = PendingCachePush.objects.all()
    maintenance_redis().flushdb()  # Redis lost
    rebuild_balance_cache()
    assert cached(card_in_cache) == balances(funded_wallet)[0] == 10_900
    assert not PendingCachePush.objects.exists()
    # the dead process's push, had it come late, and a sweep change nothing
    cache.apply_available_moves(pushes.moves_of(pending))
    assert pushes.push_overdue(older_than_seconds=0) == 0
    assert cached(card_in_cache) == 10_900
