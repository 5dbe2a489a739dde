"""What the gateway decided, written to PostgreSQL from the Redis outbox by the ledger writer."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from ledger.models import Hold


class JitDecision(models.Model):
    """One JIT funding message and our answer to it: who decided, why, how fast."""

    class Outcome(models.TextChoices):
        APPROVED = "approved"
        DECLINED = "declined"

    jit_funding_token = models.CharField(max_length=36, unique=True)
    method = models.CharField(max_length=80)
    op = models.CharField(max_length=10)
    transaction_token = models.CharField(max_length=36, blank=True, db_index=True)
    original_jit_funding_token = models.CharField(max_length=36, blank=True, db_index=True)
    user_token = models.CharField(max_length=36, db_index=True)
    card_token = models.CharField(max_length=36, blank=True, db_index=True)
    amount_minor = models.BigIntegerField()
    currency_code = models.CharField(max_length=3)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    decline_reason = models.CharField(max_length=48, blank=True)  # Marqeta's enum
    reason_code = models.CharField(max_length=48)  # ours, e.g. VELOCITY_DAY_AMOUNT
    rule_hits = models.CharField(max_length=500, blank=True)  # "<rule id>:<mode>:<action>,..."
    # each spend limit's room before this request and its maximum, "-" where none:
    # "<limit id>=<amount left>/<max amount>/<count left>/<max count>,..."
    limits_left = models.TextField(blank=True)
    available_after_minor = models.BigIntegerField(null=True, blank=True)
    mcc = models.CharField(max_length=4, blank=True)
    merchant_name = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=3, blank=True)
    channel = models.CharField(max_length=12, blank=True)
    is_fallback = models.BooleanField(default=False)  # answered by the stand-in policy
    received_at = models.DateTimeField()
    decided_at = models.DateTimeField(db_index=True)  # dashboards and time filters
    latency_us = models.PositiveIntegerField()  # received -> decided
    hold = models.ForeignKey(Hold, models.PROTECT, null=True, blank=True, related_name="+")
    ledger_error = models.CharField(max_length=200, blank=True)  # why the ledger refused, if so
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["card_token", "-decided_at"], name="decision_by_card")]
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="decision_amount_gte0"),
            models.CheckConstraint(
                condition=Q(outcome="approved", decline_reason="") | Q(outcome="declined"),
                name="decision_approval_has_no_decline_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.jit_funding_token} {self.outcome} {self.reason_code}"


class PendingCachePush(models.Model):
    """The cache moves of a committed ledger change that Redis has not taken yet.

    Written in the posting's own transaction and deleted once Redis applied the moves. A
    process killed between the commit and the push, or a Redis outage, leaves the row: the
    ledger writers push it a few seconds later (`jit.pushes.push_overdue`). Redis applies each
    ledger key once (an applied marker), so a row pushed twice moves the balance once.
    """

    moves = models.JSONField()  # [[user_token, ledger_key, delta_minor], ...]
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"cache push {self.pk}: {len(self.moves)} moves"
