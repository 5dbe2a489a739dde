"""Ledger records are read-only in the admin; adjustments move money only through actions."""

from __future__ import annotations

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin_mixins import (
    EstimatedCountPaginator,
    ReadOnlyAdminMixin,
    adopt,
    money_column,
)
from config.errors import DomainError
from ledger import services
from ledger.models import (
    Account,
    AuditEvent,
    Book,
    Clearing,
    Hold,
    HoldRelease,
    LedgerEntry,
    LedgerTransaction,
    ManualAdjustment,
    NegativeBalance,
    Wallet,
)
from ledger.money import format_money, to_minor


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["code", "kind", "balance", "negative_since"]
    list_filter = ["kind", "currency_code"]
    search_fields = ["=code"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    balance = money_column("balance", amount_field="balance_minor")


@admin.register(Book)
class BookAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "currency_code"]
    list_select_related = ["funding_bank"]


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["holder_token", "currency_code", "available_balance", "held_balance"]
    list_select_related = ["available", "held"]
    search_fields = ["=holder_token"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    @admin.display(description="available")
    def available_balance(self, wallet: Wallet) -> str:
        return format_money(wallet.available.balance_minor, wallet.currency_code)

    @admin.display(description="held")
    def held_balance(self, wallet: Wallet) -> str:
        return format_money(wallet.held.balance_minor, wallet.currency_code)


class LedgerEntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LedgerEntry
    fields = ["account", "amount_minor", "currency_code"]
    readonly_fields = fields
    extra = 0


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "kind", "idempotency_key", "actor", "memo", "created_at"]
    list_filter = ["kind"]
    search_fields = ["=idempotency_key"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    inlines = [LedgerEntryInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "transaction", "account", "amount_minor", "currency_code"]
    list_select_related = ["transaction", "account"]
    search_fields = ["=transaction__idempotency_key"]
    raw_id_fields = ["transaction", "account"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "authorization_key",
        "wallet",
        "amount",
        "remaining",
        "status",
        "merchant_name",
        "mcc",
        "expires_at",
        "is_standin",
        "created_at",
    ]
    list_filter = ["status", "is_standin"]
    list_select_related = ["wallet"]
    search_fields = ["=authorization_key", "=transaction_token", "=card_token"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    amount = money_column("amount", amount_field="amount_minor")
    remaining = money_column("remaining", amount_field="remaining_minor")


@admin.register(Clearing)
class ClearingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "clearing_key",
        "wallet",
        "amount",
        "from_hold_minor",
        "excess_minor",
        "released_minor",
        "is_final",
        "merchant_name",
        "created_at",
    ]
    list_select_related = ["wallet"]
    search_fields = ["=clearing_key", "=card_token"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    amount = money_column("amount", amount_field="amount_minor")


@admin.register(HoldRelease)
class HoldReleaseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["release_key", "hold", "reason", "amount_minor", "created_at"]
    list_select_related = ["hold"]
    list_filter = ["reason"]
    search_fields = ["=release_key"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(NegativeBalance)
class NegativeBalanceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["account", "balance_minor", "opened_at", "resolved_at"]
    list_select_related = ["account"]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter)]


class RecentActionFilter(admin.SimpleListFilter):
    """The actions of the latest events (by the created_at index), not a DISTINCT over all."""

    title = "action"
    parameter_name = "action"
    RECENT = 10_000

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        recent = AuditEvent.objects.order_by("-created_at").values_list("action", flat=True)
        return [(action, action) for action in sorted(set(recent[: self.RECENT]))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(action=self.value()) if self.value() else queryset


class TargetTypeFilter(admin.SimpleListFilter):
    """The kinds of rows people change (the audit_by_target index leads with this)."""

    title = "target type"
    parameter_name = "target_type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        labels = {
            model._meta.label_lower
            for model in apps.get_models()
            if model._meta.app_label in {"cards", "ledger", "jit", "reconciliation"}
        }
        return [(label, label) for label in sorted(labels)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(target_type=self.value()) if self.value() else queryset


def changed_fields(before: dict | None, after: dict | None) -> list[tuple[str, object, object]]:
    """(field, old, new) for each value an audit event changed; a creation lists every field."""
    before, after = before or {}, after or {}
    return [
        (name, before.get(name), after.get(name))
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Who, when, what changed, why: every write made by a person (and the system's own)."""

    list_display = [
        "created_at",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "changes",
        "reason",
    ]
    list_filter = [RecentActionFilter, TargetTypeFilter]
    search_fields = ["=target_id", "actor_label"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ["-created_at"]
    fields = [
        "created_at",
        "actor",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "reason",
        "changes",
        "before",
        "after",
    ]
    readonly_fields = fields

    @admin.display(description="what changed")
    def changes(self, event: AuditEvent) -> str:
        changed = changed_fields(event.before, event.after)
        if event.before is None:
            return "created"
        if event.after is None:
            return "deleted"
        shown = "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in changed[:6])
        more = f" (+{len(changed) - 6} more)" if len(changed) > 6 else ""
        return f"{shown}{more}" or "no field changed"


class ManualAdjustmentForm(forms.ModelForm):
    """A proposal: the amount as a decimal in the wallet's currency, and why."""

    amount = forms.DecimalField(
        max_digits=18,
        decimal_places=3,
        help_text="positive credits the cardholder, negative debits",
    )

    class Meta:
        model = ManualAdjustment
        fields = ["wallet", "amount", "reason"]

    def clean(self) -> dict:
        cleaned = super().clean()
        wallet, amount = cleaned.get("wallet"), cleaned.get("amount")
        if wallet is not None and amount is not None:
            try:
                cleaned["amount_minor"] = to_minor(amount, wallet.currency_code)
            except DomainError as error:
                self.add_error("amount", error.message)
            if cleaned.get("amount_minor") == 0:
                self.add_error("amount", "an adjustment moves a non-zero amount")
        return cleaned


@admin.register(ManualAdjustment)
class ManualAdjustmentAdmin(admin.ModelAdmin):
    """Maker-checker: proposing is adding a row; approving is an action for someone else."""

    form = ManualAdjustmentForm
    list_display = [
        "id",
        "wallet",
        "amount_display",
        "status",
        "proposed_by",
        "decided_by",
        "created_at",
        "reason",
    ]
    list_filter = ["status"]
    list_select_related = ["wallet", "proposed_by", "decided_by"]
    raw_id_fields = ["wallet"]
    actions = ["approve", "reject"]
    amount_display = money_column("amount", amount_field="amount_minor")

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ledger.approve_manualadjustment")

    def save_model(
        self, request: HttpRequest, obj: ManualAdjustment, form: forms.Form, change: bool
    ) -> None:
        """Validated in the form's clean(); the service writes the row and its audit event."""
        proposed = services.propose_adjustment(
            wallet=form.cleaned_data["wallet"],
            amount_minor=form.cleaned_data["amount_minor"],
            reason=form.cleaned_data["reason"],
            proposer=request.user,
        )
        adopt(obj, proposed)

    @admin.action(description="Approve selected adjustments", permissions=["approve"])
    def approve(self, request: HttpRequest, queryset: QuerySet[ManualAdjustment]) -> None:
        self._decide(
            request,
            queryset,
            lambda adj: services.approve_adjustment(adjustment=adj, approver=request.user),
        )

    @admin.action(description="Reject selected adjustments", permissions=["approve"])
    def reject(self, request: HttpRequest, queryset: QuerySet[ManualAdjustment]) -> None:
        self._decide(
            request,
            queryset,
            lambda adj: services.reject_adjustment(
                adjustment=adj, decider=request.user, reason="rejected in the admin"
            ),
        )

    def _decide(self, request: HttpRequest, queryset: QuerySet, decide: object) -> None:
        done = 0
        for adjustment in queryset:
            try:
                decide(adjustment)
                done += 1
            except DomainError as error:
                self.message_user(request, f"#{adjustment.pk}: {error.message}", messages.ERROR)
        self.message_user(request, f"{done} adjustment(s) decided")
