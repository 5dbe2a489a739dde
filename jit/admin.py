"""Support reads every gateway decision here: who decided, why, how fast. Nothing is editable.

The table grows by every swipe, so its filters are fixed lists and time ranges (no DISTINCT
over the table, no date hierarchy over millions of rows) and there is no full count.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from config.admin_mixins import EstimatedCountPaginator, ReadOnlyAdminMixin
from jit.methods import Op
from jit.models import JitDecision
from jit.reasons import in_words
from ledger.money import format_money

# Marqeta's decline reasons the gateway answers with (jit/lua/decide.lua, jit/services.py).
DECLINE_REASONS = (
    "INSUFFICIENT_FUNDS",
    "AMOUNT_LIMIT_EXCEEDED",
    "TRANSACTION_COUNT_LIMIT_EXCEEDED",
    "TRANSACTION_NOT_PERMITTED",
    "SUSPECTED_FRAUD",
    "CARD_NOT_ACTIVE",
    "CARDHOLDER_NOT_ACTIVE",
    "INVALID_CARD",
    "NO_CHECKING_ACCOUNT",
)


class FixedChoicesFilter(admin.SimpleListFilter):
    """A list filter over known values: Django's default would run a DISTINCT over the table."""

    field: str = ""
    known_values: tuple[str, ...] = ()

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [(value, value) for value in self.known_values]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class DeclineReasonFilter(FixedChoicesFilter):
    title = "Marqeta decline reason"
    parameter_name = field = "decline_reason"
    known_values = DECLINE_REASONS


class OpFilter(FixedChoicesFilter):
    title = "operation"
    parameter_name = field = "op"
    known_values = tuple(op.value for op in Op)


class DecidedFilter(admin.SimpleListFilter):
    """Recent decisions: a range on `decided_at`."""

    title = "decided"
    parameter_name = "decided"
    RANGES = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [
            ("hour", "in the last hour"),
            ("day", "in the last 24 hours"),
            ("week", "in 7 days"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in self.RANGES:
            return queryset
        return queryset.filter(decided_at__gte=timezone.now() - self.RANGES[self.value()])


@admin.register(JitDecision)
class JitDecisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "decided_at",
        "jit_funding_token",
        "method",
        "card_token",
        "amount",
        "outcome",
        "explanation",
        "decline_reason",
        "latency_ms",
        "is_fallback",
        "merchant_name",
    ]
    list_filter = ["outcome", "is_fallback", DecidedFilter, DeclineReasonFilter, OpFilter]
    search_fields = ["=jit_funding_token", "=transaction_token", "=card_token", "=user_token"]
    search_help_text = "JIT funding token, transaction token, card token or user token (exact)."
    list_select_related = ["hold"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ["-pk"]  # the newest first, by the primary key's index
    raw_id_fields = ["hold"]

    @admin.display(description="amount", ordering="amount_minor")
    def amount(self, decision: JitDecision) -> str:
        if not decision.currency_code:  # a malformed event recorded anyway
            return str(decision.amount_minor)
        return format_money(decision.amount_minor, decision.currency_code)

    @admin.display(description="why (our reason)", ordering="reason_code")
    def explanation(self, decision: JitDecision) -> str:
        words = in_words(
            reason_code=decision.reason_code,
            limits_left=decision.limits_left,
            currency_code=decision.currency_code or "USD",
        )
        return f"{words} ({decision.reason_code})"

    @admin.display(description="latency", ordering="latency_us")
    def latency_ms(self, decision: JitDecision) -> str:
        return f"{decision.latency_us / 1000:.2f} ms"
