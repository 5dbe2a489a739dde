"""Marqeta's events as received, and the typed queue of breaks ops must look at."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from ledger.models import Clearing, Hold, LedgerTransaction


class WebhookEvent(models.Model):
    """One notification from a webhook POST, stored before it is applied (MARQETA.md §7).

    `raw` is the event as received with every number kept as its decimal string ("150.00"),
    so no amount ever passes through a float. `token` is the dedupe key: Marqeta's
    `transactions[].token`, or `<category>:<token>` for the other categories.
    """

    class Status(models.TextChoices):
        RECEIVED = "received"  # stored, not applied yet
        APPLIED = "applied"  # its effect is in the ledger (or it needed none)
        WAITING = "waiting"  # its parent is not known yet; the task retries
        IGNORED = "ignored"  # recorded only (pings, companion events, other categories)
        FAILED = "failed"  # refused; see error_code and the exception it opened

    FINAL = frozenset({Status.APPLIED, Status.IGNORED, Status.FAILED})

    token = models.CharField(max_length=120, unique=True)
    category = models.CharField(max_length=40)  # transactions, cards, usertransitions, pings …
    event_type = models.CharField(max_length=80, blank=True)  # e.g. authorization.clearing
    state = models.CharField(max_length=20, blank=True)  # PENDING, COMPLETION, DECLINED …
    card_token = models.CharField(max_length=64, blank=True, db_index=True)
    user_token = models.CharField(max_length=64, blank=True, db_index=True)
    preceding_token = models.CharField(max_length=64, blank=True, db_index=True)
    raw = models.JSONField()
    received_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)
    error_code = models.CharField(max_length=60, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=Q(status__in=["received", "waiting"]),
                name="webhook_pending_by_age",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["received", "applied", "waiting", "ignored", "failed"]),
                name="webhook_known_status",
            ),
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(error_code=""),
                name="webhook_failed_has_error_code",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.token} {self.event_type} ({self.status})"


class ExceptionKind(models.TextChoices):
    """What broke. Each kind has its own playbook for ops."""

    UNMATCHED_CLEARING = "unmatched_clearing"
    AMOUNT_MISMATCH = "amount_mismatch"
    NEGATIVE_BALANCE = "negative_balance"
    STANDIN_APPROVAL = "standin_approval"
    UNCONFIRMED_APPROVAL = "unconfirmed_approval", "approval of ours Marqeta never confirmed"
    UNKNOWN_MARQETA_APPROVAL = (
        "unknown_marqeta_approval",
        "Marqeta approval we have no decision for",
    )
    CACHE_DRIFT = "cache_drift"
    STALE_HOLD = "stale_hold"
    DUPLICATE = "duplicate"
    UNKNOWN_CARD = "unknown_card"
    CURRENCY_MISMATCH = "currency_mismatch"
    BAD_FILE_LINE = "bad_file_line"
    REVERSAL_WITHOUT_HOLD = "reversal_without_hold"
    OUT_OF_ORDER_UNRESOLVED = "out_of_order_unresolved"


class ExceptionState(models.TextChoices):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"


class ReconciliationException(models.Model):
    """A break between our decisions, Marqeta's events and the clearing files.

    The same break reported twice (a webhook retried, a file re-sent) finds the row by
    `dedupe_key` and opens nothing new.
    """

    Kind, State = ExceptionKind, ExceptionState

    kind = models.CharField(max_length=32, choices=Kind.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN)
    dedupe_key = models.CharField(max_length=200, unique=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    notes = models.TextField(blank=True)
    hold = models.ForeignKey(Hold, models.PROTECT, null=True, blank=True, related_name="+")
    clearing = models.ForeignKey(Clearing, models.PROTECT, null=True, blank=True, related_name="+")
    ledger_transaction = models.ForeignKey(
        LedgerTransaction, models.PROTECT, null=True, blank=True, related_name="+"
    )
    webhook_event = models.ForeignKey(
        WebhookEvent, models.PROTECT, null=True, blank=True, related_name="exceptions"
    )
    card_token = models.CharField(max_length=64, blank=True, db_index=True)
    user_token = models.CharField(max_length=64, blank=True, db_index=True)
    amount_minor = models.BigIntegerField(null=True, blank=True)
    currency_code = models.CharField(max_length=3, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolution = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state", "kind", "created_at"], name="recon_exception_queue")
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ExceptionKind.values),
                name="recon_exception_known_kind",
            ),
            models.CheckConstraint(
                condition=Q(state__in=ExceptionState.values),
                name="recon_exception_known_state",
            ),
            models.CheckConstraint(
                condition=Q(state="resolved", resolved_at__isnull=False)
                | (~Q(state="resolved") & Q(resolved_at__isnull=True)),
                name="recon_exception_resolved_iff_resolved_at",
            ),
            models.CheckConstraint(
                condition=~Q(state="resolved") | ~Q(resolution=""),
                name="recon_exception_resolution_says_why",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} ({self.state})"

    @property
    def is_resolved(self) -> bool:
        return self.state == self.State.RESOLVED
