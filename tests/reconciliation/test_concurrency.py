"""Redelivered tasks and duplicate POSTs racing each other: each event applies once."""

from __future__ import annotations

from collections import Counter

import pytest

from ledger.models import Clearing
from reconciliation import services
from reconciliation.models import WebhookEvent
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.ledger.test_concurrency import run_at_once
from tests.reconciliation.conftest import envelope, store, transaction

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 12


def test_given_one_event_when_12_workers_apply_it_at_once_then_charged_once(week_wallet):
    # given
    (event,) = store(transaction("webhook_force_post"))
    # when
    outcomes = run_at_once(lambda n: services.apply_webhook_event(event=event).status, THREADS)
    # then
    assert outcomes == Counter({"applied": THREADS})
    assert Clearing.objects.count() == 1
    event.refresh_from_db()
    assert event.attempts == 1
    assert balances(week_wallet) == (23_800, 0)
    assert_ledger_consistent()


def test_given_one_body_when_posted_by_12_retries_at_once_then_stored_once(db):
    # given
    body = envelope(transaction("webhook_force_post"))
    # when
    outcomes = run_at_once(
        lambda n: str(len(services.record_webhook_envelope(body=body).stored)), THREADS
    )
    # then
    assert outcomes == Counter({"1": 1, "0": THREADS - 1})  # one stores (and queues) it
    assert WebhookEvent.objects.count() == 1
