"""The double-entry ledger. Amounts are integer minor units; entries are append-only.

Sign convention: a `LedgerEntry.amount_minor` is positive for a debit and negative for a credit,
so the entries of a transaction sum to zero per currency. `Account.balance_minor` is the running
balance on the account's normal side (credit for liabilities, debit for assets), updated in the
same database transaction as the entries, so balance reads are O(1).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Account(models.Model):
    """One ledger account. Cardholder accounts come in pairs (`available`, `held`)."""

    class Kind(models.TextChoices):
        AVAILABLE = "available", "Available (cardholder, liability)"
        HELD = "held", "Held by open authorizations (cardholder, liability)"
        FUNDING_BANK = "funding_bank", "Funding bank (program, asset)"
        SETTLEMENT_PAYABLE = "settlement_payable", "Settlement payable (program, liability)"
        ADJUSTMENTS = "adjustments", "Adjustments (program, expense)"

    DEBIT_NORMAL = frozenset({Kind.FUNDING_BANK, Kind.ADJUSTMENTS})

    code = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    currency_code = models.CharField(max_length=3)
    balance_minor = models.BigIntegerField(default=0)
    negative_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="held") | Q(balance_minor__gte=0),
                name="account_held_never_negative",
            ),
            models.CheckConstraint(
                condition=Q(currency_code__regex=r"^[A-Z]{3}$"), name="account_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def is_debit_normal(self) -> bool:
        """Assets and expenses grow with debits; liabilities grow with credits."""
        return self.kind in self.DEBIT_NORMAL

    def natural_delta(self, signed_minor: int) -> int:
        """How a signed entry (debit positive) moves this account's natural balance."""
        return signed_minor if self.is_debit_normal else -signed_minor


class Book(models.Model):
    """A program's own accounts in one currency: its bank, what it owes the network, P&L."""

    name = models.CharField(max_length=80)
    currency_code = models.CharField(max_length=3)
    funding_bank = models.OneToOneField(Account, models.PROTECT, related_name="+")
    settlement_payable = models.OneToOneField(Account, models.PROTECT, related_name="+")
    adjustments = models.OneToOneField(Account, models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "currency_code"], name="book_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency_code})"


class Wallet(models.Model):
    """A cardholder's money in one currency: what they can spend and what open holds reserve."""

    book = models.ForeignKey(Book, models.PROTECT, related_name="wallets")
    holder_token = models.CharField(max_length=36)  # Marqeta user_token
    currency_code = models.CharField(max_length=3)
    available = models.OneToOneField(Account, models.PROTECT, related_name="+")
    held = models.OneToOneField(Account, models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["holder_token", "currency_code"], name="wallet_one_per_holder_currency"
            )
        ]

    def __str__(self) -> str:
        return f"{self.holder_token} {self.currency_code}"


class Kind(models.TextChoices):
    """What a ledger transaction is, in payments terms."""

    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    HOLD = "hold"
    HOLD_RELEASE = "hold_release"
    CLEARING = "clearing"
    FORCE_POST = "force_post"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"


class LedgerTransaction(models.Model):
    """A balanced set of entries posted together under one idempotency key."""

    kind = models.CharField(max_length=20, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    actor = models.CharField(max_length=120)  # "marqeta", "api:<user>", "ops:<user>", "system"
    memo = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.idempotency_key})"


class LedgerEntry(models.Model):
    """One signed line of a transaction. Immutable once posted (a trigger refuses changes)."""

    transaction = models.ForeignKey(LedgerTransaction, models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, models.PROTECT, related_name="entries")
    amount_minor = models.BigIntegerField()  # debit positive, credit negative
    currency_code = models.CharField(max_length=3)

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=~Q(amount_minor=0), name="entry_amount_nonzero")
        ]

    def __str__(self) -> str:
        return f"{self.account.code} {self.amount_minor:+d}"


class HoldStatus(models.TextChoices):
    OPEN = "open"
    CLOSED = "closed"  # fully cleared, reversed, or closed by a final clearing
    EXPIRED = "expired"  # released because no clearing came in time


class Hold(models.Model):
    """Money reserved by an approved authorization. Nothing is charged until a clearing.

    An incremental authorization is a hold of its own linked to the first (`original`); a
    clearing or reversal of the authorization works on the whole chain.
    """

    wallet = models.ForeignKey(Wallet, models.PROTECT, related_name="holds")
    original = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="incrementals"
    )
    authorization_key = models.CharField(max_length=120, unique=True)  # e.g. jit:<token>
    amount_minor = models.BigIntegerField()
    remaining_minor = models.BigIntegerField()  # lowered by clearings and reversals
    currency_code = models.CharField(max_length=3)
    status = models.CharField(max_length=8, choices=HoldStatus.choices, default=HoldStatus.OPEN)
    expires_at = models.DateTimeField()
    card_token = models.CharField(max_length=36, blank=True, db_index=True)
    transaction_token = models.CharField(max_length=36, blank=True, db_index=True)
    jit_funding_token = models.CharField(max_length=36, blank=True, db_index=True)
    mcc = models.CharField(max_length=4, blank=True)
    merchant_name = models.CharField(max_length=100, blank=True)
    is_standin = models.BooleanField(default=False)  # approved by a fallback, not by us
    placed_by = models.OneToOneField(LedgerTransaction, models.PROTECT, related_name="hold")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining_minor__gte=0, amount_minor__gte=F("remaining_minor")),
                name="hold_remaining_within_amount",
            ),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="hold_amount_positive"),
            models.CheckConstraint(
                condition=Q(status="open") | Q(remaining_minor=0),
                name="hold_closed_has_nothing_left",
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="hold_open_by_expiry")]

    def __str__(self) -> str:
        return f"hold {self.authorization_key} {self.remaining_minor}/{self.amount_minor}"

    @property
    def is_open(self) -> bool:
        return self.status == HoldStatus.OPEN


class Clearing(models.Model):
    """A charge: from a hold (`from_hold_minor`) and beyond it from available (`excess_minor`)."""

    wallet = models.ForeignKey(Wallet, models.PROTECT, related_name="clearings")
    hold = models.ForeignKey(
        Hold, models.PROTECT, null=True, blank=True, related_name="clearings"
    )  # null: a force post, cleared with no authorization
    clearing_key = models.CharField(max_length=120, unique=True)
    amount_minor = models.BigIntegerField()
    from_hold_minor = models.BigIntegerField()
    excess_minor = models.BigIntegerField()
    released_minor = models.BigIntegerField(default=0)  # released by a final clearing
    currency_code = models.CharField(max_length=3)
    is_final = models.BooleanField()
    card_token = models.CharField(max_length=36, blank=True)
    mcc = models.CharField(max_length=4, blank=True)
    merchant_name = models.CharField(max_length=100, blank=True)
    posted_by = models.OneToOneField(LedgerTransaction, models.PROTECT, related_name="clearing")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gt=0)
                & Q(from_hold_minor__gte=0, excess_minor__gte=0, released_minor__gte=0)
                & Q(amount_minor=F("from_hold_minor") + F("excess_minor")),
                name="clearing_parts_add_up",
            )
        ]

    def __str__(self) -> str:
        return f"clearing {self.clearing_key} {self.amount_minor}"


class HoldRelease(models.Model):
    """Held money given back: a reversal (full or partial), an expiry or an ops release."""

    class Reason(models.TextChoices):
        REVERSAL = "reversal"
        EXPIRY = "expiry"
        DECLINED_BY_NETWORK = "declined_by_network"
        OPS = "ops"

    hold = models.ForeignKey(Hold, models.PROTECT, related_name="releases")
    release_key = models.CharField(max_length=120, unique=True)
    reason = models.CharField(max_length=24, choices=Reason.choices)
    requested_minor = models.BigIntegerField(null=True, blank=True)  # null: the whole hold
    amount_minor = models.BigIntegerField()
    posted_by = models.OneToOneField(LedgerTransaction, models.PROTECT, related_name="release")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="release_positive")
        ]

    def __str__(self) -> str:
        return f"release {self.release_key} {self.amount_minor}"


class NegativeBalance(models.Model):
    """An available balance went below zero (force post, over-clearing, stand-in)."""

    account = models.ForeignKey(Account, models.PROTECT, related_name="negative_balances")
    opened_by = models.ForeignKey(LedgerTransaction, models.PROTECT, related_name="+")
    balance_minor = models.BigIntegerField()
    opened_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(resolved_at__isnull=True),
                name="negative_balance_one_open_per_account",
            )
        ]

    def __str__(self) -> str:
        return f"{self.account.code} at {self.balance_minor}"


class ManualAdjustment(models.Model):
    """Money moved by a person: one proposes, a different one approves (maker-checker)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    wallet = models.ForeignKey(Wallet, models.PROTECT, related_name="adjustments")
    amount_minor = models.BigIntegerField()  # positive credits the cardholder, negative debits
    currency_code = models.CharField(max_length=3)
    reason = models.TextField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    transaction = models.OneToOneField(
        LedgerTransaction, models.PROTECT, null=True, blank=True, related_name="adjustment"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("approve_manualadjustment", "Can approve or reject manual adjustments")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount_minor=0), name="adjustment_nonzero"),
            models.CheckConstraint(
                condition=~Q(status="approved", decided_by=F("proposed_by")),
                name="adjustment_needs_second_person",
            ),
            models.CheckConstraint(
                condition=Q(status="approved", transaction__isnull=False)
                | (~Q(status="approved") & Q(transaction__isnull=True)),
                name="adjustment_posted_iff_approved",
            ),
        ]

    def __str__(self) -> str:
        return f"adjustment #{self.pk} {self.amount_minor:+d} {self.currency_code} ({self.status})"


class AuditEvent(models.Model):
    """Who changed what, when, why: written in the same transaction as the change."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=60)
    target_type = models.CharField(max_length=60)
    target_id = models.CharField(max_length=64)
    reason = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_by_target")]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.target_type}#{self.target_id}"
