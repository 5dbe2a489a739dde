"""Many threads on one account at once: never below zero, no lost update."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection

from config.errors import DomainError
from ledger.services import deposit
from tests.ledger.helpers import assert_ledger_consistent, balances, hold

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 24


def run_at_once(work: Callable[[int], str], count: int) -> Counter:
    """Start `count` threads behind a barrier so they really race; count their outcomes."""
    barrier, outcomes, lock = threading.Barrier(count), Counter(), threading.Lock()

    def worker(n: int) -> None:
        barrier.wait()
        try:
            outcome = work(n)
        except DomainError as error:
            outcome = error.code
        finally:
            connection.close()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_given_100_available_when_24_threads_hold_10_each_then_exactly_10_approved(
    funded_wallet,
):
    outcomes = run_at_once(
        lambda n: hold(funded_wallet, 1_000, f"jit:race-{n}") and "held", THREADS
    )
    assert outcomes == Counter({"held": 10, "INSUFFICIENT_FUNDS": THREADS - 10})
    assert balances(funded_wallet) == (0, 10_000)
    assert_ledger_consistent()


def test_given_one_key_when_24_threads_hold_it_then_one_hold(funded_wallet):
    outcomes = run_at_once(
        lambda n: hold(funded_wallet, 1_000, "jit:same").authorization_key, THREADS
    )
    assert outcomes == Counter({"jit:same": THREADS})
    assert balances(funded_wallet) == (9_000, 1_000)


def test_given_24_threads_when_depositing_at_once_then_no_update_lost(funded_wallet):
    run_at_once(
        lambda n: (
            deposit(wallet=funded_wallet, amount_minor=100, idempotency_key=f"c-{n}", actor="t")
            and "ok"
        ),
        THREADS,
    )
    assert balances(funded_wallet) == (10_000 + 100 * THREADS, 0)
    assert_ledger_consistent()
