"""Webhook events are read-only; the exception queue is worked through actions (services)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.timesince import timesince

from config.admin_mixins import ReadOnlyAdminMixin
from config.errors import DomainError
from ledger.models import Hold, HoldStatus, Wallet
from ledger.money import format_money, to_minor
from reconciliation import reports, services
from reconciliation.marqeta import PINGS, TRANSACTIONS
from reconciliation.models import (
    ClearingFile,
    ClearingLine,
    ReconciliationException,
    WebhookEvent,
)


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


class ChangePageContextMixin:
    """`change_view` with extra context worked out from the row (`change_page_context`)."""

    def change_page_context(self, request: HttpRequest, obj: Any) -> dict[str, Any]:
        return {}

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            extra.update(self.change_page_context(request, obj))
        return super().change_view(request, object_id, form_url, extra_context=extra)


@admin.register(ReconciliationException)
class ReconciliationExceptionAdmin(ChangePageContextMixin, admin.ModelAdmin):
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
    actions = [
        "assign_to_me",
        "mark_in_progress",
        "resolve",
        "release_linked_hold",
        "rematch_to_hold",
        "note",
    ]
    change_form_template = "admin/reconciliation/reconciliationexception/change_form.html"
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

    # rematch an unmatched clearing to a hold ops choose (services.rematch_clearing)

    @admin.action(description="Rematch to a chosen hold (one exception)", permissions=["change"])
    def rematch_to_hold(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponseRedirect | None:
        """The hold is chosen on a page of its own, so this opens it for one exception."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one exception to rematch.", messages.ERROR)
            return None
        return HttpResponseRedirect(_rematch_url(queryset.get()))

    def get_urls(self) -> list:
        rematch = path(
            "<int:exception_id>/rematch/",
            self.admin_site.admin_view(self.rematch_view),
            name="reconciliation_reconciliationexception_rematch",
        )
        return [rematch, *super().get_urls()]

    def change_page_context(
        self, request: HttpRequest, exception: ReconciliationException
    ) -> dict[str, Any]:
        """A "Rematch to a hold" button for Ops on the unresolved exceptions it can fix."""
        if _offers_rematch(exception) and self.has_change_permission(request):
            return {"rematch_url": _rematch_url(exception)}
        return {}

    def rematch_view(self, request: HttpRequest, exception_id: int) -> HttpResponse:
        """GET: the clearing and the wallet's holds to choose from; POST: parse, call
        `rematch_clearing`, say what it did. Ops only (the change permission)."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        exception = get_object_or_404(ReconciliationException, pk=exception_id)
        form = RematchForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                done = services.rematch_clearing(
                    exception=exception,
                    hold=form.cleaned_data["hold"],
                    actor=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except DomainError as error:
                self.message_user(request, f"#{exception.pk}: {error.message}", messages.ERROR)
            else:
                level = messages.WARNING if done.replayed else messages.SUCCESS
                self.message_user(request, rematch_message(done), level)
                return HttpResponseRedirect(_change_url(exception))
        return self._rematch_page(request, exception, form)

    def _rematch_page(
        self, request: HttpRequest, exception: ReconciliationException, form: RematchForm
    ) -> HttpResponse:
        if exception.is_resolved:
            self.message_user(request, f"#{exception.pk} is resolved: {exception.resolution}")
            return HttpResponseRedirect(_change_url(exception))
        try:
            unposted = services.unposted_clearing_of(exception=exception)
        except DomainError as error:
            self.message_user(
                request, f"#{exception.pk} cannot be rematched: {error.message}", messages.ERROR
            )
            return HttpResponseRedirect(_change_url(exception))
        search = request.GET.get("q", "").strip()
        holds = rematch_candidates(wallet=unposted.wallet, search=search)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Rematch exception #{exception.pk} to a hold",
            "opts": self.model._meta,
            "exception": exception,
            "change_url": _change_url(exception),
            "clearing": unposted,
            "amount": format_money(unposted.amount_minor, unposted.currency_code),
            "search": search,
            "candidates": [CandidateRow.of(hold) for hold in holds[:REMATCH_CANDIDATES_SHOWN]],
            "shown_at_most": REMATCH_CANDIDATES_SHOWN,
            "closed_within_days": REMATCH_CLOSED_WITHIN.days,
            "form": form,
        }
        return TemplateResponse(
            request, "admin/reconciliation/reconciliationexception/rematch.html", context
        )


REMATCH_CLOSED_WITHIN = timedelta(days=30)  # a clearing may come weeks after its hold closed
REMATCH_CANDIDATES_SHOWN = 50


class RematchForm(forms.Form):
    """Parses the rematch page; `rematch_clearing` decides whether the hold may take it."""

    hold = forms.ModelChoiceField(
        queryset=Hold.objects.all(),
        widget=forms.HiddenInput,  # the page draws the radio buttons in its table of holds
        error_messages={"required": "Choose a hold.", "invalid_choice": "No such hold."},
    )
    reason = forms.CharField(
        max_length=500, error_messages={"required": "Say why this hold is the right one."}
    )


@dataclass(frozen=True, slots=True)
class CandidateRow:
    """One hold of the rematch page, in the wallet's currency."""

    pk: int
    authorization_key: str
    card_token: str
    merchant: str
    amount: str
    remaining: str
    status: str
    placed_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, hold: Hold) -> CandidateRow:
        money = partial(format_money, currency_code=hold.currency_code)
        return cls(
            pk=hold.pk,
            authorization_key=hold.authorization_key,
            card_token=hold.card_token,
            merchant=f"{hold.merchant_name} ({hold.mcc})" if hold.mcc else hold.merchant_name,
            amount=money(hold.chain_amount_minor),
            remaining=money(hold.chain_remaining_minor),
            status=hold.status,
            placed_at=hold.created_at,
            closed_at=hold.closed_at,
        )


def rematch_candidates(*, wallet: Wallet, search: str = "") -> QuerySet[Hold]:
    """The wallet's authorizations a clearing may belong to, newest first, in one query: open,
    or closed (cleared, reversed, expired) within `REMATCH_CLOSED_WITHIN`; with the chain's
    amount and what it still holds (incrementals included)."""
    recent = timezone.now() - REMATCH_CLOSED_WITHIN
    holds = Hold.objects.filter(wallet=wallet, original__isnull=True).filter(
        Q(status=HoldStatus.OPEN) | Q(closed_at__gte=recent)
    )
    if search:
        holds = holds.filter(_hold_search(search, currency_code=wallet.currency_code))
    return holds.annotate(
        chain_amount_minor=F("amount_minor") + Coalesce(Sum("incrementals__amount_minor"), 0),
        chain_remaining_minor=F("remaining_minor")
        + Coalesce(Sum("incrementals__remaining_minor"), 0),
    ).order_by("-created_at", "-pk")


def _hold_search(text: str, *, currency_code: str) -> Q:
    """A part of the merchant's name, an MCC, a token or key, or the authorized amount."""
    found = (
        Q(merchant_name__icontains=text)
        | Q(mcc=text)
        | Q(authorization_key=text)
        | Q(transaction_token=text)
        | Q(jit_funding_token=text)
    )
    try:
        return found | Q(amount_minor=to_minor(text, currency_code))
    except DomainError:  # not an amount: the words only
        return found


def rematch_message(done: services.Rematch) -> str:
    """What a rematch did, in words, for the admin's message."""
    exception, clearing = done.exception, done.clearing
    key = clearing.hold.authorization_key
    if done.replayed:
        return f"#{exception.pk} was already rematched to {key}: nothing changed."
    money = partial(format_money, currency_code=clearing.currency_code)
    text = (
        f"#{exception.pk}: charged {money(clearing.amount_minor)} to {key} "
        f"({money(clearing.from_hold_minor)} from the hold, {money(clearing.excess_minor)} "
        f"from available, {money(clearing.released_minor)} released); resolved."
    )
    marqeta = exception.details["rematch"].get("marqeta_released_minor")
    if marqeta is not None and marqeta != clearing.released_minor:
        text += f" Marqeta's amount_to_be_released was {money(marqeta)}."
    return text


def _offers_rematch(exception: ReconciliationException) -> bool:
    return exception.kind in services.REMATCHABLE_KINDS and not exception.is_resolved


def _rematch_url(exception: ReconciliationException) -> str:
    return reverse("admin:reconciliation_reconciliationexception_rematch", args=[exception.pk])


def _change_url(exception: ReconciliationException) -> str:
    return reverse("admin:reconciliation_reconciliationexception_change", args=[exception.pk])


# --- clearing files -----------------------------------------------------------------------------


@admin.register(ClearingFile)
class ClearingFileAdmin(ChangePageContextMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Files as received and what ingesting them did; the change page shows the file's report.

    Two CSV downloads (staff login, the view permission): `<id>/report.csv` for one file and
    `report/<YYYY-MM-DD>.csv` for a settlement day, whose page is `report/<YYYY-MM-DD>/`.
    """

    list_display = [
        "id",
        "name",
        "settlement_date",
        "status",
        "trailer_check",
        "lines_total",
        "lines_applied",
        "lines_failed",
        "lines_flagged",
        "received_at",
        "finished_at",
    ]
    list_filter = ["status", "trailer_check", "settlement_date"]
    search_fields = ["=sha256", "name"]
    date_hierarchy = "settlement_date"
    ordering = ["-pk"]
    show_full_result_count = False
    change_form_template = "admin/reconciliation/clearingfile/change_form.html"

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:file_id>/report.csv",
                wrap(self.file_report_csv),
                name="reconciliation_clearingfile_report_csv",
            ),
            path(
                "report/<str:day>.csv",
                wrap(self.day_report_csv),
                name="reconciliation_clearingfile_day_csv",
            ),
            path(
                "report/<str:day>/",
                wrap(self.day_report_view),
                name="reconciliation_clearingfile_day",
            ),
            *super().get_urls(),
        ]

    def change_page_context(
        self, request: HttpRequest, clearing_file: ClearingFile
    ) -> dict[str, Any]:
        """The file's report, and its CSV link, under the file's fields."""
        return {
            "report": reports.file_report(clearing_file=clearing_file),
            "report_csv_url": reverse(
                "admin:reconciliation_clearingfile_report_csv", args=[clearing_file.pk]
            ),
        }

    def _ensure_may_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    @staticmethod
    def _day(day: str) -> date:
        try:
            return date.fromisoformat(day)
        except ValueError:
            raise Http404(f"{day!r} is not a date (YYYY-MM-DD)") from None

    @staticmethod
    def _csv(report: reports.ClearingReport, filename: str) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        csv.writer(response, lineterminator="\n").writerows(reports.report_csv_rows(report))
        return response

    def file_report_csv(self, request: HttpRequest, file_id: int) -> HttpResponse:
        self._ensure_may_view(request)
        clearing_file = ClearingFile.objects.filter(pk=file_id).first()
        if clearing_file is None:
            raise Http404("no such clearing file")
        report = reports.file_report(clearing_file=clearing_file)
        return self._csv(report, f"clearing-report-file-{clearing_file.pk}.csv")

    def day_report_csv(self, request: HttpRequest, day: str) -> HttpResponse:
        self._ensure_may_view(request)
        settled_on = self._day(day)
        report = reports.daily_report(day=settled_on)
        return self._csv(report, f"clearing-report-{settled_on.isoformat()}.csv")

    def day_report_view(self, request: HttpRequest, day: str) -> HttpResponse:
        self._ensure_may_view(request)
        settled_on = self._day(day)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reconciliation report: {settled_on.isoformat()}",
            "opts": self.model._meta,
            "report": reports.daily_report(day=settled_on),
            "report_csv_url": reverse(
                "admin:reconciliation_clearingfile_day_csv", args=[settled_on.isoformat()]
            ),
        }
        return TemplateResponse(request, "admin/reconciliation/clearing_day.html", context)


class OutcomeMethodFilter(admin.SimpleListFilter):
    title = "match method"
    parameter_name = "method"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [(value or "none", label) for value, label in ClearingLine.MatchMethod.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() is None:
            return queryset
        return queryset.filter(match_method="" if self.value() == "none" else self.value())


@admin.register(ClearingLine)
class ClearingLineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "file",
        "line_number",
        "transaction_token",
        "record_type",
        "amount",
        "debit_credit",
        "outcome",
        "match_method",
        "error_code",
        "message",
    ]
    list_filter = ["outcome", OutcomeMethodFilter, "error_code", "debit_credit"]
    search_fields = ["=line_key", "=transaction_token", "=card_token", "=preceding_token"]
    list_select_related = ["file"]
    raw_id_fields = ["file", "hold", "clearing", "ledger_transaction"]
    show_full_result_count = False
    ordering = ["-pk"]

    @admin.display(description="amount", ordering="amount_minor")
    def amount(self, line: ClearingLine) -> str:
        if line.amount_minor is None:
            return "-"
        try:
            return format_money(line.amount_minor, line.currency_code)
        except DomainError:
            return str(line.amount_minor)
