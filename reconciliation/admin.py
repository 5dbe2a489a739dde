"""Webhook events are read-only; the exception queue is worked through actions (services)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from config.admin_mixins import ReadOnlyAdminMixin
from config.errors import DomainError
from ledger.money import format_money
from reconciliation import services
from reconciliation.marqeta import PINGS, TRANSACTIONS
from reconciliation.models import ReconciliationException, WebhookEvent


class CategoryFilter(admin.SimpleListFilter):
    """A fixed list: a DISTINCT over millions of events would be slow."""

    title = "category"
    parameter_name = "category"
    CATEGORIES = (TRANSACTIONS, "cards", "usertransitions", "chargebacktransitions", PINGS)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [(category, category) for category in self.CATEGORIES]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(category=self.value()) if self.value() else queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "token",
        "category",
        "event_type",
        "state",
        "status",
        "attempts",
        "received_at",
        "outcome",
        "error_code",
    ]
    list_filter = ["status", CategoryFilter]
    search_fields = ["=token", "=card_token", "=user_token", "=preceding_token"]
    list_select_related = False  # no foreign keys: one query per page already
    show_full_result_count = False
    ordering = ["-pk"]


class ReasonActionForm(ActionForm):
    """The action bar's text box: the resolution, the release reason or the note."""

    reason = forms.CharField(
        required=False,
        label="Reason / note",
        widget=forms.TextInput(attrs={"size": 60}),
    )


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    BUCKETS = {
        "day": (None, timedelta(days=1)),
        "week": (timedelta(days=1), timedelta(days=7)),
        "older": (timedelta(days=7), None),
    }

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("day", "under a day"), ("week", "1 to 7 days"), ("older", "over 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in self.BUCKETS:
            return queryset
        older_than, younger_than = self.BUCKETS[self.value()]
        now = timezone.now()
        if older_than is not None:
            queryset = queryset.filter(created_at__lte=now - older_than)
        if younger_than is not None:
            queryset = queryset.filter(created_at__gt=now - younger_than)
        return queryset


Work = Callable[[ReconciliationException], Any]


@admin.register(ReconciliationException)
class ReconciliationExceptionAdmin(admin.ModelAdmin):
    """The ops queue. Rows are opened by the system; people change them only through actions."""

    list_display = [
        "id",
        "kind",
        "state",
        "assignee",
        "amount",
        "card_token",
        "user_token",
        "age",
        "created_at",
    ]
    list_filter = ["kind", "state", ("assignee", admin.RelatedOnlyFieldListFilter), AgeFilter]
    search_fields = ["=card_token", "=user_token", "=dedupe_key"]
    list_select_related = ["assignee"]
    show_full_result_count = False
    ordering = ["-created_at"]
    action_form = ReasonActionForm
    actions = ["assign_to_me", "mark_in_progress", "resolve", "release_linked_hold", "note"]
    readonly_fields = [
        "kind",
        "state",
        "dedupe_key",
        "assignee",
        "amount",
        "card_token",
        "user_token",
        "hold",
        "clearing",
        "ledger_transaction",
        "webhook_event",
        "details",
        "notes",
        "created_at",
        "updated_at",
        "resolved_at",
        "resolved_by",
        "resolution",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """The detail page is read-only; `change` permits the actions (Ops, not Support)."""
        return False if obj is not None else super().has_change_permission(request, obj)

    @admin.display(description="amount", ordering="amount_minor")
    def amount(self, exception: ReconciliationException) -> str:
        if exception.amount_minor is None:
            return "-"
        if not exception.currency_code:
            return str(exception.amount_minor)
        return format_money(exception.amount_minor, exception.currency_code)

    @admin.display(description="age", ordering="created_at")
    def age(self, exception: ReconciliationException) -> str:
        return timesince(exception.created_at)

    def _each(
        self, request: HttpRequest, queryset: QuerySet, work: Work, *, done_message: str
    ) -> None:
        done = 0
        for exception in queryset.select_related("hold"):
            try:
                work(exception)
                done += 1
            except DomainError as error:
                self.message_user(request, f"#{exception.pk}: {error.message}", messages.ERROR)
        self.message_user(request, f"{done} exception(s) {done_message}")

    def _reason(self, request: HttpRequest, what: str) -> str | None:
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(
                request, f"Type {what} in the box next to the action first.", messages.ERROR
            )
            return None
        return reason

    @admin.action(description="Assign selected to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(
            request,
            queryset,
            lambda exception: services.assign_exception(
                exception=exception, assignee=request.user, actor=request.user
            ),
            done_message="assigned to you",
        )

    @admin.action(description="Mark selected in progress", permissions=["change"])
    def mark_in_progress(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(
            request,
            queryset,
            lambda exception: services.start_exception(exception=exception, actor=request.user),
            done_message="in progress",
        )

    @admin.action(description="Resolve selected (reason required)", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet) -> None:
        if (resolution := self._reason(request, "how they were resolved")) is None:
            return
        self._each(
            request,
            queryset,
            lambda exception: services.resolve_exception(
                exception=exception, actor=request.user, resolution=resolution
            ),
            done_message="resolved",
        )

    @admin.action(
        description="Release the linked hold of selected (reason required)",
        permissions=["change"],
    )
    def release_linked_hold(self, request: HttpRequest, queryset: QuerySet) -> None:
        if (reason := self._reason(request, "why the holds are released")) is None:
            return
        self._each(
            request,
            queryset,
            lambda exception: services.release_hold_for_exception(
                exception=exception, actor=request.user, reason=reason
            ),
            done_message="had their hold released",
        )

    @admin.action(description="Add the note to selected", permissions=["change"])
    def note(self, request: HttpRequest, queryset: QuerySet) -> None:
        if (text := self._reason(request, "the note")) is None:
            return
        self._each(
            request,
            queryset,
            lambda exception: services.add_note(exception=exception, actor=request.user, note=text),
            done_message="noted",
        )
