"""Tasks, called as functions (Celery is not eager here): thin, re-runnable, retried."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from ledger.models import Clearing
from reconciliation.errors import ParentNotYetKnown
from reconciliation.models import ReconciliationException, WebhookEvent
from reconciliation.tasks import apply_webhook_event_task, retry_waiting_webhooks
from tests.ledger.helpers import balances
from tests.reconciliation.conftest import store, transaction

pytestmark = pytest.mark.django_db


def orphan_clearing() -> WebhookEvent:
    """A clearing whose authorization we never see."""
    (event,) = store(
        transaction(
            "webhook_clearing_2",
            token="txn-z-clr",
            preceding_related_transaction_token="txn-z-auth",
            jit={"token": "jit-z-clr", "original_jit_funding_token": "jit-z-auth"},
        )
    )
    return event


def test_given_stored_force_post_when_task_runs_twice_then_applied_once(week_wallet):
    # given
    (event,) = store(transaction("webhook_force_post"))
    # when
    first = apply_webhook_event_task(event.pk)
    second = apply_webhook_event_task(event.pk)
    # then
    assert (first, second) == ("applied", "applied")
    assert Clearing.objects.count() == 1
    assert balances(week_wallet) == (23_800, 0)


def test_given_unknown_event_id_when_task_runs_then_nothing_happens(db):
    assert apply_webhook_event_task(999_999) == "missing"


def test_given_missing_parent_when_task_runs_then_waiting_and_raises_for_a_retry(week_wallet):
    # given
    event = orphan_clearing()
    # when
    with pytest.raises(ParentNotYetKnown):
        apply_webhook_event_task(event.pk)
    # then
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("waiting", 1)
    assert not ReconciliationException.objects.exists()


def test_given_parent_never_arrives_when_retries_run_out_then_out_of_order_unresolved(
    week_wallet,
):
    # given
    event = orphan_clearing()
    # when: every retry, run eagerly (no countdown), until the last one gives up
    result = apply_webhook_event_task.apply(args=[event.pk])
    # then
    assert result.get() == "failed"
    event.refresh_from_db()
    assert (event.status, event.error_code) == ("failed", "parent_not_yet_known")
    assert event.attempts == settings.WEBHOOK_MAX_RETRIES + 1
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.webhook_event) == ("out_of_order_unresolved", event)
    assert (exception.amount_minor, exception.card_token) == (6_000, "card_91b2")
    assert balances(week_wallet) == (25_000, 0)
    # and a late redelivery of the task changes nothing
    assert apply_webhook_event_task(event.pk) == "failed"
    assert ReconciliationException.objects.count() == 1


def test_given_last_retry_when_task_runs_then_gives_up_at_once(week_wallet):
    event = orphan_clearing()
    result = apply_webhook_event_task.apply(args=[event.pk], retries=settings.WEBHOOK_MAX_RETRIES)
    assert result.get() == "failed"
    event.refresh_from_db()
    assert event.attempts == 1


def test_given_stalled_and_fresh_events_when_beat_runs_then_only_stalled_are_queued_again(
    db, enqueued
):
    # given
    long_ago = timezone.now() - timedelta(hours=1)
    received_old, waiting_old, waiting_recent, applied_old, received_new = store(
        *(transaction("webhook_force_post", token=f"txn-{n}") for n in range(5))
    )
    WebhookEvent.objects.filter(
        pk__in=[received_old.pk, waiting_old.pk, waiting_recent.pk, applied_old.pk]
    ).update(received_at=long_ago)
    WebhookEvent.objects.filter(pk=waiting_old.pk).update(
        status="waiting", last_attempt_at=long_ago
    )
    WebhookEvent.objects.filter(pk=waiting_recent.pk).update(
        status="waiting", last_attempt_at=timezone.now()
    )
    WebhookEvent.objects.filter(pk=applied_old.pk).update(status="applied")
    enqueued.clear()
    # when
    count = retry_waiting_webhooks()
    # then
    assert count == 2
    assert enqueued == [received_old.pk, waiting_old.pk]
