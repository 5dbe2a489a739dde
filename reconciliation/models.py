"""Marqeta's events as received, and the typed queue of breaks ops must look at."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

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


# --- clearing files (MARQETA.md §12) -------------------------------------------------------------


class ClearingFile(models.Model):
    """One clearing file as received, identified by the SHA-256 of its bytes.

    The same bytes twice are one file (the second pull skips it). Ingestion checks the header
    and the trailer first, then applies the detail lines in batches; `applied_through_line` is
    the checkpoint committed with each batch, so a file killed mid-way resumes after it.
    """

    class Status(models.TextChoices):
        RECEIVED = "received"  # recorded; not ingested yet
        INGESTING = "ingesting"  # header and trailer checked; lines being applied
        INGESTED = "ingested"  # every line applied or queued as an exception
        REJECTED = "rejected"  # nothing applied: see `error` and the file's exception

    class TrailerCheck(models.TextChoices):
        PENDING = "", "not checked yet"
        OK = "ok", "count and net total match"
        UNVERIFIED = "unverified", "count matches; bad lines make the total uncheckable"
        MISSING = "missing", "no trailer"
        COUNT_MISMATCH = "count_mismatch", "count differs"
        TOTAL_MISMATCH = "total_mismatch", "net total differs"

    sha256 = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    source_url = models.CharField(max_length=1000)  # where the pull found it
    stored_url = models.CharField(max_length=1000)  # where ingestion reads it (processed/)
    size_bytes = models.BigIntegerField()
    settlement_date = models.DateField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    trailer_check = models.CharField(
        max_length=16, choices=TrailerCheck.choices, default=TrailerCheck.PENDING, blank=True
    )
    lines_total = models.PositiveIntegerField(null=True, blank=True)  # detail rows (bad too)
    lines_applied = models.PositiveIntegerField(default=0)  # in the ledger (posted or replayed)
    lines_replayed = models.PositiveIntegerField(default=0)  # of those, posted before the file
    lines_failed = models.PositiveIntegerField(default=0)  # not posted: an exception each
    lines_flagged = models.PositiveIntegerField(default=0)  # posted, but with an exception
    applied_through_line = models.PositiveIntegerField(default=0)  # resume checkpoint
    currency_code = models.CharField(max_length=3, blank=True)  # of the first valid line
    debit_total_minor = models.BigIntegerField(default=0)  # valid D lines in currency_code
    credit_total_minor = models.BigIntegerField(default=0)  # valid C lines in currency_code
    totals = models.JSONField(default=dict, blank=True)  # {currency: {debit_minor, credit_minor}}
    control_net_amount = models.DecimalField(  # D - C over every readable amount, as a check
        max_digits=24, decimal_places=4, null=True, blank=True
    )
    trailer_count = models.PositiveIntegerField(null=True, blank=True)
    trailer_net_amount = models.DecimalField(  # signed by the trailer's debit_credit
        max_digits=24, decimal_places=4, null=True, blank=True
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # each committed batch
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="clearing_file_sha256_hex"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["received", "ingesting", "ingested", "rejected"]),
                name="clearing_file_known_status",
            ),
            models.CheckConstraint(
                condition=Q(
                    trailer_check__in=[
                        "",
                        "ok",
                        "unverified",
                        "missing",
                        "count_mismatch",
                        "total_mismatch",
                    ]
                ),
                name="clearing_file_known_trailer_check",
            ),
            models.CheckConstraint(
                condition=Q(size_bytes__gte=0, debit_total_minor__gte=0, credit_total_minor__gte=0),
                name="clearing_file_sizes_not_negative",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["ingested", "rejected"]) | Q(finished_at__isnull=False),
                name="clearing_file_finished_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | ~Q(error=""),
                name="clearing_file_rejected_says_why",
            ),
            models.CheckConstraint(
                condition=~Q(status="ingested") | Q(trailer_check__in=["ok", "unverified"]),
                name="clearing_file_ingested_trailer_checked",
            ),
            models.CheckConstraint(
                condition=Q(lines_replayed__lte=F("lines_applied")),
                name="clearing_file_replayed_within_applied",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in (self.Status.INGESTED, self.Status.REJECTED)

    @property
    def lines_processed(self) -> int:
        return self.lines_applied + self.lines_failed


class ClearingLine(models.Model):
    """One detail row of a clearing file and what applying it did.

    `line_key` is the row's `transaction_token` (Marqeta's token of the clearing), so a line
    re-sent in another file finds this row and moves nothing. A row too broken to name its
    token is keyed by its file and line number (`bad:<sha256 prefix>:<line>`).
    """

    class Outcome(models.TextChoices):
        POSTED = "posted"  # this line moved the money
        REPLAYED = "replayed"  # already posted under its token (webhook, JIT advice): nothing moved
        REFUSED = "refused"  # the ledger refused it (an exception says why)
        EXCEPTION = "exception"  # not posted: bad line, no match, unknown card, amount differs

    class MatchMethod(models.TextChoices):
        NONE = "", "none"
        JIT_TOKEN = "jit_token"  # noqa: S105 - a method name, not a secret
        PRECEDING_TOKEN = "preceding_token"  # noqa: S105
        FUZZY = "fuzzy"
        FORCE_POST = "force_post"
        REFUND = "refund"

    file = models.ForeignKey(ClearingFile, models.PROTECT, related_name="lines")
    line_number = models.PositiveIntegerField()  # physical line where the record starts
    line_key = models.CharField(max_length=120, unique=True)
    record_type = models.CharField(max_length=80, blank=True)
    transaction_token = models.CharField(max_length=80, blank=True)
    network_reference_id = models.CharField(max_length=80, blank=True)
    preceding_token = models.CharField(max_length=80, blank=True)
    jit_funding_token = models.CharField(max_length=80, blank=True)
    original_jit_funding_token = models.CharField(max_length=80, blank=True)
    card_token = models.CharField(max_length=64, blank=True)
    user_token = models.CharField(max_length=64, blank=True)
    amount_minor = models.BigIntegerField(null=True, blank=True)  # null: unreadable
    debit_credit = models.CharField(max_length=1, blank=True)
    currency_code = models.CharField(max_length=3, blank=True)
    settlement_date = models.DateField(null=True, blank=True)
    is_final_clearing = models.BooleanField(null=True, blank=True)  # as sent; null = empty
    amount_to_be_released_minor = models.BigIntegerField(null=True, blank=True)
    mcc = models.CharField(max_length=4, blank=True)
    merchant_name = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    match_method = models.CharField(
        max_length=16, choices=MatchMethod.choices, default=MatchMethod.NONE, blank=True
    )
    hold = models.ForeignKey(Hold, models.PROTECT, null=True, blank=True, related_name="+")
    clearing = models.ForeignKey(Clearing, models.PROTECT, null=True, blank=True, related_name="+")
    ledger_transaction = models.ForeignKey(
        LedgerTransaction, models.PROTECT, null=True, blank=True, related_name="+"
    )
    error_code = models.CharField(max_length=60, blank=True)
    message = models.CharField(max_length=200, blank=True)
    raw = models.TextField(blank=True)  # the row as read, kept for bad lines only
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["file", "line_number"], name="clearing_line_once"),
            models.CheckConstraint(
                condition=Q(outcome__in=["posted", "replayed", "refused", "exception"]),
                name="clearing_line_known_outcome",
            ),
            models.CheckConstraint(
                condition=Q(
                    match_method__in=[
                        "",
                        "jit_token",
                        "preceding_token",
                        "fuzzy",
                        "force_post",
                        "refund",
                    ]
                ),
                name="clearing_line_known_match_method",
            ),
            models.CheckConstraint(
                condition=Q(debit_credit__in=["", "D", "C"]), name="clearing_line_direction"
            ),
            models.CheckConstraint(
                condition=Q(amount_minor__isnull=True) | Q(amount_minor__gt=0),
                name="clearing_line_amount_positive",
            ),
            models.CheckConstraint(  # money moved (or was found moved) only for a readable line
                condition=~Q(outcome__in=["posted", "replayed"])
                | (
                    Q(amount_minor__isnull=False, ledger_transaction__isnull=False)
                    & ~Q(debit_credit="")
                ),
                name="clearing_line_in_ledger_has_posting",
            ),
            models.CheckConstraint(
                condition=Q(outcome__in=["posted", "replayed"]) | ~Q(error_code=""),
                name="clearing_line_not_posted_says_why",
            ),
            models.CheckConstraint(  # a posted charge is a Clearing; a posted refund is not
                condition=~Q(outcome="posted")
                | Q(match_method="refund", clearing__isnull=True, debit_credit="C")
                | Q(match_method="force_post", clearing__isnull=False, hold__isnull=True)
                | Q(
                    match_method__in=["jit_token", "preceding_token", "fuzzy"],
                    clearing__isnull=False,
                    hold__isnull=False,
                ),
                name="clearing_line_posted_by_method",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file_id}:{self.line_number} {self.line_key} ({self.outcome})"
