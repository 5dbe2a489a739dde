"""A real Celery worker process pulls a clearing file from its inbox and ingests it end to end:
the beat task's function is queued with `.delay` (no beat, no eager mode), the worker records the
file and queues its ingestion on the `clearing` queue, and the ledger shows the result. The same
file dropped again is skipped by its hash."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ledger.models import HoldStatus, LedgerTransaction
from reconciliation.models import ClearingFile, ClearingLine
from reconciliation.tasks import pull_clearing_files_task
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.reconciliation.clearing_helpers import authorize, clearing_csv, row
from tests.reconciliation.conftest import settled

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
NAME = "clearing_demo_20260509_1.csv"
AUTH_A = {"preceding": "txn-a-auth", "original": "jit-a-auth"}


def wait_for(found: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until `found()` is truthy (the worker commits on its own); its last value."""
    deadline = time.monotonic() + timeout
    while not (value := found()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def finished_file() -> ClearingFile | None:
    return ClearingFile.objects.filter(status__in=["ingested", "rejected"]).first()


def test_given_a_file_in_the_inbox_when_a_real_worker_pulls_it_then_the_ledger_has_it_once(
    celery_worker, clearing_inbox, week_wallet
):
    # given: §11's auth A (150.00 + 50.00 incremental held) and §12's file for that day
    auth_a = authorize(week_wallet, txn="txn-a-auth", amount_minor=15_000)
    authorize(week_wallet, txn="txn-a-incr", amount_minor=5_000, original=auth_a)
    content = clearing_csv(
        [
            row("txn-a-clr1", "120.00", final="false", **AUTH_A),
            row("txn-a-clr2", "60.00", released="20.00", **AUTH_A),
            row("txn-d-force", "12.00", final="", mcc="7523", merchant="CITY PARKING"),
        ]
    )
    (clearing_inbox / NAME).write_bytes(content)
    assert balances(week_wallet) == (5_000, 20_000)
    # when: beat's task, queued as beat queues it
    pull_clearing_files_task.delay()
    clearing_file = wait_for(finished_file)
    # then: recorded, moved out of the inbox, every line posted; the hold chain used up
    assert clearing_file is not None, "the worker did not ingest the file"
    assert (clearing_file.status, clearing_file.trailer_check) == ("ingested", "ok")
    assert (clearing_file.lines_total, clearing_file.lines_applied) == (3, 3)
    assert clearing_file.stored_url.endswith(f"processed/{NAME}")
    assert sorted(ClearingLine.objects.values_list("outcome", flat=True)) == ["posted"] * 3
    assert balances(week_wallet) == (25_000 - 19_200, 0)
    assert settled(week_wallet) == 19_200
    auth_a.refresh_from_db()
    assert (auth_a.status, auth_a.remaining_minor) == (HoldStatus.CLOSED, 0)
    assert_ledger_consistent()
    postings = LedgerTransaction.objects.count()
    # when: the exporter drops the same file again
    (clearing_inbox / NAME).write_bytes(content)
    pull_clearing_files_task.delay()
    # then: the worker moves it aside as a copy of the first; nothing is recorded or posted
    assert wait_for(lambda: not (clearing_inbox / NAME).exists()), "the second copy was not pulled"
    assert len(list((clearing_inbox / "processed").iterdir())) == 2
    assert ClearingFile.objects.count() == 1
    assert ClearingLine.objects.count() == 3
    assert LedgerTransaction.objects.count() == postings
    assert balances(week_wallet) == (25_000 - 19_200, 0)
