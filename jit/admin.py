"""Support reads every gateway decision here: who decided, why, how fast. Nothing is editable."""

from __future__ import annotations

from django.contrib import admin

from config.admin_mixins import ReadOnlyAdminMixin
from jit.models import JitDecision
from ledger.money import format_money


@admin.register(JitDecision)
class JitDecisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "decided_at",
        "jit_funding_token",
        "method",
        "card_token",
        "amount",
        "outcome",
        "decline_reason",
        "reason_code",
        "latency_ms",
        "is_fallback",
        "merchant_name",
    ]
    list_filter = ["outcome", "is_fallback", "decline_reason", "op"]
    search_fields = ["=jit_funding_token", "=transaction_token", "=card_token", "=user_token"]
    list_select_related = ["hold"]
    show_full_result_count = False
    date_hierarchy = "decided_at"
    raw_id_fields = ["hold"]

    @admin.display(description="amount", ordering="amount_minor")
    def amount(self, decision: JitDecision) -> str:
        if not decision.currency_code:  # a malformed event recorded anyway
            return str(decision.amount_minor)
        return format_money(decision.amount_minor, decision.currency_code)

    @admin.display(description="latency", ordering="latency_us")
    def latency_ms(self, decision: JitDecision) -> str:
        return f"{decision.latency_us / 1000:.2f} ms"
