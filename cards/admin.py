"""Ops edit programs, cardholders, cards and their controls; money never moves from here.

Controls, limits, fraud rules and fallback settings are saved by the services, never by
`ModelForm.save()`: each form's clean() runs the service's validation, so a refusal is a form
error and not a 500 (Django ticket 28619), and the service writes the row and its audit event
and tells the JIT cache once the change commits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import smart_split, unescape_string_literal

from cards import services
from cards.errors import InvalidLimit, InvalidScope
from cards.models import (
    Card,
    Cardholder,
    Channel,
    CommandoModeRecord,
    FallbackPolicy,
    FraudRule,
    FundingAccount,
    MccGroup,
    Program,
    Scope,
    ScopedConfig,
    SpendControl,
    VelocityLimit,
)
from cards.selectors import ScopeObj, program_of
from config import ops_views
from config.admin_mixins import (
    EstimatedCountPaginator,
    NoDeleteAdminMixin,
    ReadOnlyAdminMixin,
    adopt,
    audit_admin_write,
    stored_snapshot,
)
from config.errors import DomainError
from ledger.money import format_money, to_decimal, to_minor


def admin_reason(request: HttpRequest) -> str:
    """The audit reason of a change made where the page asks for none (inlines, actions)."""
    return f"changed in the admin by {request.user.get_username()}"


def apply_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    change: Callable[[Any], object],
    done: str,
) -> None:
    """An action: call the service per row, show each refusal, report the count."""
    changed = 0
    for row in queryset:
        try:
            change(row)
            changed += 1
        except DomainError as error:
            model_admin.message_user(request, f"{row}: {error.message}", messages.ERROR)
    model_admin.message_user(request, f"{changed} {done}")


def _program_of_row(row: Model) -> Program:
    return program_of(scope_obj=row.scope_obj) if isinstance(row, ScopedConfig) else row.program


def money_display(minor_field: str, description: str) -> Any:
    """A column (and the read-only view of a money form field) in the row's program currency."""

    @admin.display(description=description, ordering=minor_field)
    def column(self: Any, row: Model) -> str:
        minor = getattr(row, minor_field)
        if minor is None:
            return "no maximum"
        return format_money(minor, _program_of_row(row).currency_code)

    return column


class MoneyColumns:
    """Read-only views of the money form fields, named like them (Support sees these)."""

    max_transaction = money_display("max_transaction_minor", "max per transaction")
    max_amount = money_display("max_amount_minor", "max amount")
    standin_max_transaction = money_display(
        "standin_max_transaction_minor", "stand-in max per transaction"
    )
    standin_max_daily_per_card = money_display(
        "standin_max_daily_per_card_minor", "stand-in max per card per day"
    )


# --- forms saved by services -------------------------------------------------------------


def money_field(*, required: bool = False, initial: Decimal | None = None) -> forms.DecimalField:
    return forms.DecimalField(
        required=required, initial=initial, help_text="in the program's currency, e.g. 250.00"
    )


class ServiceForm(forms.ModelForm):
    """A configuration form that validates with the service and saves through it.

    `money_fields` maps a decimal form field (in the program's currency) to its `*_minor`
    model field; `service_fields` go to the service as they are (from the row when read-only).
    """

    money_fields: ClassVar[dict[str, str]] = {}
    service_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None or not self.money_fields:
            return
        currency = self.program().currency_code
        for name, minor_field in self.money_fields.items():
            if (minor := getattr(self.instance, minor_field)) is not None:
                self.initial.setdefault(name, to_decimal(minor, currency))

    def program(self) -> Program:
        """The program of the row: its currency converts the money fields."""
        cleaned = getattr(self, "cleaned_data", {})
        return cleaned.get("program") or self.instance.program

    def validate(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields as the service would store them, or the DomainError it would raise."""
        raise NotImplementedError

    def save_with_service(self, *, actor: Any, reason: str) -> Model:
        raise NotImplementedError

    def fields_for_service(self) -> dict[str, Any]:
        fields = {
            name: self.cleaned_data[name]
            if name in self.cleaned_data
            else getattr(self.instance, name)
            for name in self.service_fields
        }
        currency = self.program().currency_code
        for name, minor_field in self.money_fields.items():
            amount = self.cleaned_data.get(name)
            fields[minor_field] = None if amount is None else to_minor(amount, currency)
        return fields

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            normalized = self.validate(self.fields_for_service())
        except DomainError as error:
            self._validate_unique = False  # the service's message, not "Constraint … violated"
            raise forms.ValidationError(error.message, code=error.code) from None
        # The model's constraints are then checked on the values as they will be stored.
        cleaned.update((name, value) for name, value in normalized.items() if name in cleaned)
        return cleaned


def with_reason(form: type[ServiceForm]) -> type[ServiceForm]:
    """The form of a model's own admin page, which asks why (inlines and actions say who)."""
    reason = forms.CharField(max_length=500, help_text="why (kept in the audit log)")
    return type(f"{form.__name__}WithReason", (form,), {"reason": reason})


class ScopedForm(ServiceForm):
    """Controls and limits: on their own admin page the scope is chosen (and fixed once
    saved); in an inline it is the page's program, cardholder or card."""

    def scope_obj(self) -> ScopeObj:
        cleaned = getattr(self, "cleaned_data", {})
        chosen = [cleaned[name] for name in Scope.values if cleaned.get(name)]
        if len(chosen) > 1:
            raise InvalidScope("choose one of program, cardholder or card, not several")
        if chosen:
            return chosen[0]
        if any(getattr(self.instance, f"{name}_id") for name in Scope.values):
            return self.instance.scope_obj
        raise InvalidScope("choose the program, cardholder or card this applies to")

    def program(self) -> Program:
        return program_of(scope_obj=self.scope_obj())


SPEND_CONTROL_FIELDS = [
    "max_transaction",
    "mcc_allow",
    "mcc_block",
    "mcc_groups_allow",
    "mcc_groups_block",
    "blocked_countries",
    "allowed_channels",
]
VELOCITY_LIMIT_FIELDS = ["window", "max_amount", "max_count", "active"]
FRAUD_RULE_FIELDS = ("name", "kind", "mode", "action", "params")
FALLBACK_POLICY_FIELDS = (
    "mode",
    "standin_allowed_mccs",
    "deadline_ms",
    "redis_timeout_ms",
    "breaker_failure_threshold",
    "breaker_reset_seconds",
)
COMMANDO_MODE_RECORD_FIELDS = (
    "program_gateway_funding_source_token",
    "auth_controls",
    "velocity_controls",
    "real_time_standin_enabled",
    "include_connection_errors",
    "include_response_timeouts",
    "include_application_errors",
    "notes",
)


class SpendControlForm(ScopedForm):
    money_fields: ClassVar = {"max_transaction": "max_transaction_minor"}
    service_fields: ClassVar = tuple(SPEND_CONTROL_FIELDS[1:])

    max_transaction = money_field()
    allowed_channels = forms.MultipleChoiceField(
        choices=Channel.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="none ticked: every channel",
    )

    class Meta:
        model = SpendControl
        fields = [*Scope.values, *SPEND_CONTROL_FIELDS]
        help_texts = {
            "mcc_allow": "4-digit MCCs, comma-separated; empty: every MCC",
            "mcc_block": "4-digit MCCs, comma-separated",
            "blocked_countries": "ISO alpha-3 codes, comma-separated, e.g. PRK,IRN",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            program = self.program()
        except InvalidScope:  # a new control on its own page: any program's groups
            return
        for name in ("mcc_groups_allow", "mcc_groups_block"):
            if name in self.fields:
                self.fields[name].queryset = MccGroup.objects.filter(program=program)

    def validate(self, fields: dict[str, Any]) -> dict[str, Any]:
        return services.validate_spend_control(scope_obj=self.scope_obj(), **fields)

    def save_with_service(self, *, actor: Any, reason: str) -> SpendControl:
        return services.set_spend_control(
            scope_obj=self.scope_obj(), actor=actor, reason=reason, **self.fields_for_service()
        )


class VelocityLimitForm(ScopedForm):
    money_fields: ClassVar = {"max_amount": "max_amount_minor"}
    service_fields: ClassVar = ("window", "max_count", "active")

    max_amount = money_field()

    class Meta:
        model = VelocityLimit
        fields = [*Scope.values, *VELOCITY_LIMIT_FIELDS]

    def validate(self, fields: dict[str, Any]) -> dict[str, Any]:
        if self.instance.pk and "window" in self.changed_data:
            raise InvalidLimit("a limit keeps its window: add a limit for the other window")
        return services.validate_velocity_limit(**fields)

    def save_with_service(self, *, actor: Any, reason: str) -> VelocityLimit:
        return services.set_velocity_limit(
            scope_obj=self.scope_obj(), actor=actor, reason=reason, **self.fields_for_service()
        )


class FraudRuleForm(ServiceForm):
    service_fields: ClassVar = FRAUD_RULE_FIELDS

    class Meta:
        model = FraudRule
        fields = ["program", *FRAUD_RULE_FIELDS]
        help_texts = {
            "params": 'high_risk_mcc {"mccs": ["7995"]}, foreign_country {"home_country": '
            '"USA"}, burst {"count": 5, "seconds": 60}, amount_over {"amount_minor": 50000}, '
            'amount_outlier {"multiple": 5, "min_history": 10}; other kinds {}',
        }

    def validate(self, fields: dict[str, Any]) -> dict[str, Any]:
        return services.validate_fraud_rule(**fields)

    def save_with_service(self, *, actor: Any, reason: str) -> FraudRule:
        return services.set_fraud_rule(
            program=self.program(), actor=actor, reason=reason, **self.fields_for_service()
        )


class FallbackPolicyForm(ServiceForm):
    money_fields: ClassVar = {
        "standin_max_transaction": "standin_max_transaction_minor",
        "standin_max_daily_per_card": "standin_max_daily_per_card_minor",
    }
    service_fields: ClassVar = FALLBACK_POLICY_FIELDS

    standin_max_transaction = money_field(required=True, initial=Decimal(0))
    standin_max_daily_per_card = money_field(required=True, initial=Decimal(0))

    class Meta:
        model = FallbackPolicy
        fields = [
            "program",
            "mode",
            "standin_max_transaction",
            "standin_max_daily_per_card",
            *FALLBACK_POLICY_FIELDS[1:],  # after the mode
        ]
        help_texts = {"standin_allowed_mccs": "4-digit MCCs, comma-separated; empty: any MCC"}

    def validate(self, fields: dict[str, Any]) -> dict[str, Any]:
        return services.validate_fallback_policy(program=self.program(), **fields)

    def save_with_service(self, *, actor: Any, reason: str) -> FallbackPolicy:
        return services.set_fallback_policy(
            program=self.program(), actor=actor, reason=reason, **self.fields_for_service()
        )


class CommandoModeRecordForm(ServiceForm):
    service_fields: ClassVar = COMMANDO_MODE_RECORD_FIELDS

    class Meta:
        model = CommandoModeRecord
        fields = ["program", *COMMANDO_MODE_RECORD_FIELDS]

    def validate(self, fields: dict[str, Any]) -> dict[str, Any]:
        return services.validate_commando_mode_record(**fields)

    def save_with_service(self, *, actor: Any, reason: str) -> CommandoModeRecord:
        return services.set_commando_mode_record(
            program=self.program(), actor=actor, reason=reason, **self.fields_for_service()
        )


class ServiceAdmin(MoneyColumns, NoDeleteAdminMixin, admin.ModelAdmin):
    """A configuration model's own page: saved by the form's service, with a reason.

    Subclasses set `form = with_reason(<ServiceForm>)` and list their `fields`.
    """

    readonly_on_change: ClassVar[list[str]] = []

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        editable = (
            self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        )
        return [*self.fields, "reason"] if editable else list(self.fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return self.readonly_on_change if obj else []

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        saved = form.save_with_service(actor=request.user, reason=form.cleaned_data["reason"])
        adopt(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: list, change: bool) -> None:
        # No form.save_m2m(): the service has set the many-to-many fields.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@cache
def control_inlines(scope: str) -> list[type[InlineModelAdmin]]:
    """The spend control and velocity limit inlines of a program, cardholder or card page."""

    class SpendControlInline(MoneyColumns, admin.StackedInline):
        model, form, fk_name, fields = SpendControl, SpendControlForm, scope, SPEND_CONTROL_FIELDS
        extra, max_num, can_delete = 0, 1, False
        verbose_name_plural = f"spend control of this {scope} (all scopes apply: strictest wins)"

    class VelocityLimitInline(MoneyColumns, admin.TabularInline):
        model, form, fk_name = VelocityLimit, VelocityLimitForm, scope
        fields = VELOCITY_LIMIT_FIELDS
        extra, can_delete = 0, False
        verbose_name_plural = f"velocity limits of this {scope} (untick active to stop one)"

    return [SpendControlInline, VelocityLimitInline]


class ControlInlinesMixin:
    """Saves the control inlines through the services; they show on change pages only (a
    scope must exist before it has controls)."""

    def get_inlines(self, request: HttpRequest, obj: Model | None) -> list:
        inlines = super().get_inlines(request, obj)
        return inlines if obj else [i for i in inlines if not issubclass(i.form, ServiceForm)]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if not issubclass(formset.form, ServiceForm):
            super().save_formset(request, form, formset, change)
            return
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for row_form in formset.forms:  # deleting is off in these inlines
            if not row_form.has_changed():
                continue
            is_new = row_form.instance.pk is None
            saved = row_form.save_with_service(actor=request.user, reason=admin_reason(request))
            if is_new:
                formset.new_objects.append(saved)
            else:
                formset.changed_objects.append((saved, row_form.changed_data))


# --- programs, cardholders, cards ------------------------------------------------------------


class MccGroupInline(admin.TabularInline):
    model = MccGroup
    extra = 0


class ProgramForm(forms.ModelForm):
    def clean_timezone(self) -> str:
        timezone_name = self.cleaned_data["timezone"]
        try:
            services.check_timezone(timezone_name)
        except DomainError as error:
            raise forms.ValidationError(error.message, code=error.code) from None
        return timezone_name


@admin.register(Program)
class ProgramAdmin(ControlInlinesMixin, NoDeleteAdminMixin, admin.ModelAdmin):
    form = ProgramForm
    list_display = ["name", "currency_code", "timezone", "default_hold_expiry_days"]
    inlines = [MccGroupInline, *control_inlines(Scope.PROGRAM)]

    def get_readonly_fields(self, request: HttpRequest, obj: Program | None = None) -> list[str]:
        # The currency and books are fixed once money may have moved in them.
        return ["currency_code", "book"] if obj else ["book"]

    def save_model(self, request: HttpRequest, obj: Program, form: object, change: bool) -> None:
        if change:
            services.update_program(
                program=obj,
                actor=request.user,
                reason=admin_reason(request),
                name=obj.name,
                timezone_name=obj.timezone,
                default_hold_expiry_days=obj.default_hold_expiry_days,
            )
            return
        created = services.create_program(
            name=obj.name,
            currency_code=obj.currency_code,
            timezone_name=obj.timezone,
            default_hold_expiry_days=obj.default_hold_expiry_days,
        )
        adopt(obj, created)
        audit_admin_write(request, target=created, action="create_program")

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not MccGroup:
            super().save_formset(request, form, formset, change)
            return
        # MCC groups have no service: the audit rows are written here, in the admin's
        # transaction, with each group as it was before the edit.
        before = {
            row_form.instance.pk: stored_snapshot(row_form.instance)
            for row_form in formset.initial_forms
            if row_form.has_changed() or row_form in formset.deleted_forms
        }
        deleted = [f.instance.pk for f in formset.deleted_forms if f.instance.pk is not None]
        super().save_formset(request, form, formset, change)
        for group in formset.new_objects:
            audit_admin_write(request, target=group, action="create_mcc_group")
        for group, _ in formset.changed_objects:
            audit_admin_write(
                request, target=group, action="update_mcc_group", before=before.get(group.pk)
            )
        for pk in deleted:
            audit_admin_write(
                request,
                target=MccGroup(pk=pk),
                action="delete_mcc_group",
                before=before.get(pk),
                deleted=True,
            )
        if formset.new_objects or formset.changed_objects or formset.deleted_objects:
            services.announce_mcc_groups_changed(program=form.instance)


class FundingAccountInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = FundingAccount
    fields = ["currency_code", "wallet"]
    readonly_fields = fields
    extra = 0


class CardInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Card
    fields = ["token", "last_four", "state", "expires_on"]
    readonly_fields = fields
    extra = 0
    show_change_link = True


@admin.register(Cardholder)
class CardholderAdmin(ControlInlinesMixin, NoDeleteAdminMixin, admin.ModelAdmin):
    list_display = ["token", "first_name", "last_name", "email", "status", "program"]
    list_filter = ["status", "program"]
    list_select_related = ["program"]
    search_fields = ["=token", "first_name", "last_name", "=email"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    inlines = [FundingAccountInline, CardInline, *control_inlines(Scope.CARDHOLDER)]
    actions = ["suspend", "reactivate", "close"]

    def get_readonly_fields(self, request: HttpRequest, obj: Cardholder | None = None) -> list:
        # Status changes go through the actions, so each one is audited and reaches the cache.
        return ["token", "program", "status", "effective_controls"] if obj else ["status"]

    @admin.display(description="effective controls (preview)")
    def effective_controls(self, cardholder: Cardholder) -> SafeString:
        return ops_views.cardholder_controls_preview(cardholder)

    def save_model(self, request: HttpRequest, obj: Cardholder, form: object, change: bool) -> None:
        if change:  # names and email: no service of their own, audited here
            before = stored_snapshot(obj)
            super().save_model(request, obj, form, change)
            audit_admin_write(request, target=obj, action="update_cardholder", before=before)
            return
        created = services.create_cardholder(
            program=obj.program,
            token=obj.token or None,
            first_name=obj.first_name,
            last_name=obj.last_name,
            email=obj.email,
        )
        adopt(obj, created)
        audit_admin_write(request, target=created, action="create_cardholder")

    def _set_status(self, request: HttpRequest, queryset: QuerySet, status: str) -> None:
        apply_each(
            self,
            request,
            queryset,
            lambda cardholder: services.set_cardholder_status(
                cardholder=cardholder,
                status=status,
                actor=request.user,
                reason=admin_reason(request),
            ),
            done=f"cardholder(s) now {status}",
        )

    @admin.action(
        description="Suspend selected cardholders (all their cards)", permissions=["change"]
    )
    def suspend(self, request: HttpRequest, queryset: QuerySet[Cardholder]) -> None:
        self._set_status(request, queryset, Cardholder.Status.SUSPENDED)

    @admin.action(description="Reactivate selected cardholders", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Cardholder]) -> None:
        self._set_status(request, queryset, Cardholder.Status.ACTIVE)

    @admin.action(description="Close selected cardholders (final)", permissions=["change"])
    def close(self, request: HttpRequest, queryset: QuerySet[Cardholder]) -> None:
        self._set_status(request, queryset, Cardholder.Status.CLOSED)


LAST_FOUR_RE = re.compile(r"[0-9]{4}")


def card_search(term: str) -> Q:
    """One search word as indexed lookups: four digits are the last four, a word with "@" an
    email, a word with a digit or "_" a card token or else a cardholder token, any other word
    a first or last name (any case)."""
    if LAST_FOUR_RE.fullmatch(term):
        return Q(last_four=term)  # card.last_four index
    if "@" in term:  # cardholder.email index (emails are stored as typed, usually lower case)
        return Q(cardholder__in=Cardholder.objects.filter(email__in={term, term.lower()}))
    if any(char.isdigit() or char == "_" for char in term):
        # Two unique indexes; an OR of the two in one query would scan every card.
        if Card.objects.filter(token=term).exists():
            return Q(token=term)
        return Q(cardholder__in=Cardholder.objects.filter(token=term))
    return Q(
        cardholder__in=Cardholder.objects.filter(
            Q(first_name__iexact=term) | Q(last_name__iexact=term)
        )
    )


@admin.register(Card)
class CardAdmin(ControlInlinesMixin, NoDeleteAdminMixin, admin.ModelAdmin):
    list_display = [
        "token",
        "last_four",
        "state",
        "cardholder",
        "cardholder_email",
        "expires_on",
        "created_at",
        "history_link",
    ]
    list_filter = ["state"]
    list_select_related = ["cardholder"]
    search_fields = ["=token", "=last_four", "cardholder__first_name", "=cardholder__email"]
    search_help_text = (
        "Card token, last four digits, cardholder token, first or last name, or email "
        "(whole words; several words must all match)."
    )
    raw_id_fields = ["cardholder"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    inlines = control_inlines(Scope.CARD)
    actions = ["suspend", "reactivate"]

    def get_urls(self) -> list[URLPattern]:
        # The card's timeline takes the URL and name of Django's object history page, so the
        # change page's "History" button leads to it (who changed the card is in the audit
        # log, linked from the timeline).
        history = path(
            "<int:card_id>/history/",
            self.admin_site.admin_view(self.card_history_view),
            name="cards_card_history",
        )
        return [history, *super().get_urls()]

    def card_history_view(self, request: HttpRequest, card_id: int) -> TemplateResponse:
        """The card's timeline for support (permission `cards.view_card`)."""
        return ops_views.card_history_page(request, card_id=card_id)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        """Django's object history, reached only with an id that is not a number: none."""
        raise Http404("no such card")

    @admin.display(description="history")
    def history_link(self, card: Card) -> str:
        url = reverse("admin:cards_card_history", args=[card.pk])
        return format_html('<a href="{}">history</a>', url)

    @admin.display(description="email", ordering="cardholder__email")
    def cardholder_email(self, card: Card) -> str:
        return card.cardholder.email

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Card], search_term: str
    ) -> tuple[QuerySet[Card], bool]:
        """Every word must match (see `card_search`); never a LIKE over millions of rows."""
        for word in smart_split(search_term):
            if word[:1] in {'"', "'"} and word[-1:] == word[:1]:
                word = unescape_string_literal(word)
            if word := word.strip():
                queryset = queryset.filter(card_search(word))
        return queryset, False

    def get_readonly_fields(self, request: HttpRequest, obj: Card | None = None) -> list[str]:
        # State changes go through the actions, so each one is audited.
        if obj is None:
            return ["state"]
        return ["token", "cardholder", "state", "last_four", "effective_controls"]

    @admin.display(description="effective controls (preview)")
    def effective_controls(self, card: Card) -> SafeString:
        return ops_views.card_controls_preview(card)

    def save_model(self, request: HttpRequest, obj: Card, form: object, change: bool) -> None:
        if change:  # the expiry date: no service of its own, audited here
            before = stored_snapshot(obj)
            super().save_model(request, obj, form, change)
            audit_admin_write(request, target=obj, action="update_card", before=before)
            return
        created = services.create_card(
            cardholder=obj.cardholder,
            token=obj.token or None,
            last_four=obj.last_four or None,
            expires_on=obj.expires_on,
        )
        adopt(obj, created)
        audit_admin_write(request, target=created, action="create_card")

    def _set_state(self, request: HttpRequest, queryset: QuerySet[Card], state: str) -> None:
        apply_each(
            self,
            request,
            queryset,
            lambda card: services.set_card_state(
                card=card, state=state, actor=request.user, reason=f"{state} in the admin"
            ),
            done=f"card(s) now {state}",
        )

    @admin.action(description="Suspend selected cards", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Card]) -> None:
        self._set_state(request, queryset, Card.State.SUSPENDED)

    @admin.action(description="Reactivate selected cards", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Card]) -> None:
        self._set_state(request, queryset, Card.State.ACTIVE)


# --- controls, limits, fraud rules, fallback ---------------------------------------------------

SCOPE_SELECT_RELATED = ["program", "cardholder__program", "card__cardholder__program"]


@admin.register(SpendControl)
class SpendControlAdmin(ServiceAdmin):
    form = with_reason(SpendControlForm)
    fields = [*Scope.values, *SPEND_CONTROL_FIELDS]
    readonly_on_change: ClassVar = Scope.values
    list_display = [
        "__str__",
        "max_transaction",
        "mcc_allow",
        "mcc_block",
        "blocked_countries",
        "allowed_channels",
        "updated_at",
    ]
    list_select_related = SCOPE_SELECT_RELATED
    raw_id_fields = ["cardholder", "card"]
    search_fields = ["=card__token", "=cardholder__token"]
    show_full_result_count = False


@admin.register(VelocityLimit)
class VelocityLimitAdmin(ServiceAdmin):
    form = with_reason(VelocityLimitForm)
    fields = [*Scope.values, *VELOCITY_LIMIT_FIELDS]
    readonly_on_change: ClassVar = [*Scope.values, "window"]
    list_display = ["__str__", "window", "max_amount", "max_count", "active", "updated_at"]
    list_filter = ["window", "active"]
    list_select_related = SCOPE_SELECT_RELATED
    raw_id_fields = ["cardholder", "card"]
    search_fields = ["=card__token", "=cardholder__token"]
    show_full_result_count = False


@admin.register(FraudRule)
class FraudRuleAdmin(ServiceAdmin):
    form = with_reason(FraudRuleForm)
    fields = FraudRuleForm.Meta.fields
    readonly_on_change: ClassVar = ["program", "name"]
    list_display = [
        "name",
        "program",
        "kind",
        "mode",
        "action",
        "params",
        "hits_last_24h",
        "updated_at",
    ]
    list_filter = ["mode", "kind", "action", "program"]
    list_select_related = ["program"]
    actions = ["turn_on", "shadow_mode", "turn_off"]

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """Each listed rule gets its hits of the last 24 hours, counted in one query."""
        changelist = super().get_changelist_instance(request)
        rules = list(changelist.result_list)  # the page, evaluated once and kept
        since = timezone.now() - ops_views.RULE_HITS_WINDOW
        hits = ops_views.fraud_rule_hits((rule.pk for rule in rules), since=since)
        for rule in rules:
            rule.hits_24h = hits.get(rule.pk, (0, 0))
        return changelist

    @admin.display(description="last 24 h: hits (would decline)")
    def hits_last_24h(self, rule: FraudRule) -> str:
        hits, declines = getattr(rule, "hits_24h", (0, 0))
        if rule.action == FraudRule.Action.FLAG:
            return f"{hits} hit(s), flag only"
        verb = "declined" if rule.mode == FraudRule.Mode.ON else "would decline"
        return f"{hits} hit(s), {declines} {verb}"

    def _set_mode(self, request: HttpRequest, queryset: QuerySet[FraudRule], mode: str) -> None:
        apply_each(
            self,
            request,
            queryset,
            lambda rule: services.set_fraud_rule_mode(
                rule=rule, mode=mode, actor=request.user, reason=admin_reason(request)
            ),
            done=f"rule(s) now {mode}",
        )

    @admin.action(description="Turn on (may decline)", permissions=["change"])
    def turn_on(self, request: HttpRequest, queryset: QuerySet[FraudRule]) -> None:
        self._set_mode(request, queryset, FraudRule.Mode.ON)

    @admin.action(description="Shadow mode (record, never decline)", permissions=["change"])
    def shadow_mode(self, request: HttpRequest, queryset: QuerySet[FraudRule]) -> None:
        self._set_mode(request, queryset, FraudRule.Mode.SHADOW)

    @admin.action(description="Turn off", permissions=["change"])
    def turn_off(self, request: HttpRequest, queryset: QuerySet[FraudRule]) -> None:
        self._set_mode(request, queryset, FraudRule.Mode.OFF)


@admin.register(FallbackPolicy)
class FallbackPolicyAdmin(ServiceAdmin):
    form = with_reason(FallbackPolicyForm)
    fields = FallbackPolicyForm.Meta.fields
    readonly_on_change: ClassVar = ["program"]
    list_display = [
        "program",
        "mode",
        "standin_max_transaction",
        "standin_max_daily_per_card",
        "deadline_ms",
        "redis_timeout_ms",
        "updated_at",
    ]
    list_select_related = ["program"]
    BREAKER = "breaker_of_this_process"

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        fields = super().get_fields(request, obj)
        return [*fields, self.BREAKER] if obj else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        fields = super().get_readonly_fields(request, obj)
        return [*fields, self.BREAKER] if obj else fields

    @admin.display(description="breaker of this web process (per process)")
    def breaker_of_this_process(self, policy: FallbackPolicy) -> SafeString:
        return ops_views.breaker_panel(policy.program)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        panel = ops_views.breaker_panel(None)
        return super().changelist_view(request, {**(extra_context or {}), "breaker_panel": panel})


@admin.register(CommandoModeRecord)
class CommandoModeRecordAdmin(ServiceAdmin):
    form = with_reason(CommandoModeRecordForm)
    fields = CommandoModeRecordForm.Meta.fields
    readonly_on_change: ClassVar = ["program"]
    list_display = [
        "program",
        "program_gateway_funding_source_token",
        "real_time_standin_enabled",
        "updated_at",
    ]
    list_select_related = ["program"]
