"""Celery tasks: thin, re-runnable; webhooks on the `webhooks` queue, files on `clearing`."""

from __future__ import annotations

from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings

from reconciliation import selectors, services
from reconciliation.errors import ParentNotYetKnown
from reconciliation.inbox import InboxUnavailable
from reconciliation.models import ClearingFile, WebhookEvent


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


# --- clearing files and hold expiry (on the `clearing` queue) -----------------------------------


@shared_task(
    acks_late=True,
    queue="clearing",
    autoretry_for=(InboxUnavailable,),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=8,
)
def ingest_clearing_file_task(clearing_file_id: int) -> str:
    """Check and apply one recorded clearing file. Safe to run twice: it resumes after the last
    committed batch, lines already applied are skipped by key, and a second worker started on
    the same file returns at once (advisory lock)."""
    from reconciliation.clearing import ingest_clearing_file

    clearing_file = ClearingFile.objects.filter(pk=clearing_file_id).first()
    if clearing_file is None:
        return "missing"
    return ingest_clearing_file(clearing_file=clearing_file).status


@shared_task(acks_late=True, queue="clearing", autoretry_for=(InboxUnavailable,), max_retries=3)
def pull_clearing_files_task() -> int:
    """Beat: record the inbox's new files (each queued for ingestion on commit) and queue again
    the files whose ingestion stalled. Returns how many new files were recorded."""
    from reconciliation.clearing import pull_clearing_files

    return sum(registration.created for registration in pull_clearing_files(enqueue=True))


@shared_task(acks_late=True, queue="clearing")
def expire_holds_task() -> dict[str, int]:
    """Beat (hourly): release holds past their expiry, then flag holds about to expire (and any
    still open well past it) as `stale_hold`. Safe to run twice (keys, dedupe)."""
    from reconciliation.expiry import expire_due_holds, flag_stale_holds

    run = expire_due_holds(batch_size=settings.HOLD_EXPIRY_BATCH)
    flagged = flag_stale_holds(
        warning=timedelta(hours=settings.STALE_HOLD_WARNING_HOURS),
        overdue=timedelta(hours=settings.STALE_HOLD_OVERDUE_HOURS),
    )
    return {"expired": run.expired, "skipped": run.skipped, **flagged}


@shared_task(acks_late=True)
def flag_negative_balances_task() -> int:
    """Every open overdraft flag of the ledger reaches the ops queue."""
    from reconciliation.drift import record_negative_balances

    return record_negative_balances()
