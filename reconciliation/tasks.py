"""Celery tasks: thin, re-runnable, on the `webhooks` queue."""

from __future__ import annotations

from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings

from reconciliation import selectors, services
from reconciliation.errors import ParentNotYetKnown
from reconciliation.models import WebhookEvent


@shared_task(
    bind=True,
    acks_late=True,
    queue="webhooks",
    autoretry_for=(ParentNotYetKnown,),
    retry_backoff=settings.WEBHOOK_RETRY_BACKOFF_SECONDS,
    retry_backoff_max=settings.WEBHOOK_RETRY_BACKOFF_MAX_SECONDS,
    max_retries=settings.WEBHOOK_MAX_RETRIES,
)
def apply_webhook_event_task(self: Task, event_id: int) -> str:
    """Apply one stored webhook event. Safe to run twice: an applied event is not applied again.

    While the event's parent is unknown the service raises `ParentNotYetKnown` and Celery
    retries with backoff; the last retry gives up and opens `out_of_order_unresolved`.
    """
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None:
        return "missing"
    last_attempt = self.request.retries >= (self.max_retries or 0)
    return services.apply_webhook_event(event=event, last_attempt=last_attempt).status


@shared_task(acks_late=True, queue="webhooks")
def retry_waiting_webhooks() -> int:
    """Beat: queue again the events left received or waiting (a worker died, the broker lost
    a message, a commit hook could not reach the broker). Applying twice is harmless."""
    idle_for = timedelta(minutes=settings.WEBHOOK_REQUEUE_AFTER_MINUTES)
    event_ids = selectors.stalled_webhook_event_ids(idle_for=idle_for)
    for event_id in event_ids:
        apply_webhook_event_task.delay(event_id)
    return len(event_ids)


@shared_task(acks_late=True)
def check_cache_drift_task() -> int:
    """Compare every cached balance with the ledger; differences go to the ops queue."""
    from reconciliation.drift import record_cache_drift

    return record_cache_drift()
