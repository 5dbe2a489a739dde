"""Ops edit programs, cardholders and cards; money never moves from these pages."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from cards import services
from cards.models import Card, Cardholder, FundingAccount, MccGroup, Program
from config.admin_mixins import NoDeleteAdminMixin, ReadOnlyAdminMixin, adopt
from config.errors import DomainError


class MccGroupInline(admin.TabularInline):
    model = MccGroup
    extra = 0


@admin.register(Program)
class ProgramAdmin(NoDeleteAdminMixin, admin.ModelAdmin):
    list_display = ["name", "currency_code", "timezone", "default_hold_expiry_days"]
    inlines = [MccGroupInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Program | None = None) -> list[str]:
        # The currency and books are fixed once money may have moved in them.
        return ["currency_code", "book"] if obj else ["book"]

    def save_model(self, request: HttpRequest, obj: Program, form: object, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.create_program(
            name=obj.name, currency_code=obj.currency_code, timezone_name=obj.timezone,
            default_hold_expiry_days=obj.default_hold_expiry_days,
        )  # fmt: skip
        adopt(obj, created)


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
class CardholderAdmin(NoDeleteAdminMixin, admin.ModelAdmin):
    list_display = ["token", "first_name", "last_name", "email", "status", "program"]
    list_filter = ["status", "program"]
    list_select_related = ["program"]
    search_fields = ["=token", "last_name", "=email"]
    show_full_result_count = False
    inlines = [FundingAccountInline, CardInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Cardholder | None = None) -> list:
        return ["token", "program"] if obj else []

    def save_model(self, request: HttpRequest, obj: Cardholder, form: object, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.create_cardholder(
            program=obj.program, token=obj.token or None, first_name=obj.first_name,
            last_name=obj.last_name, email=obj.email,
        )  # fmt: skip
        adopt(obj, created)


@admin.register(Card)
class CardAdmin(NoDeleteAdminMixin, admin.ModelAdmin):
    list_display = ["token", "last_four", "state", "cardholder", "expires_on", "created_at"]
    list_filter = ["state"]
    list_select_related = ["cardholder"]
    search_fields = ["=token", "=last_four", "cardholder__last_name", "=cardholder__email"]
    raw_id_fields = ["cardholder"]
    show_full_result_count = False
    actions = ["suspend", "reactivate"]

    def get_readonly_fields(self, request: HttpRequest, obj: Card | None = None) -> list[str]:
        # State changes go through the actions, so each one is audited.
        return ["token", "cardholder", "state", "last_four"] if obj else ["state"]

    def save_model(self, request: HttpRequest, obj: Card, form: object, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.create_card(
            cardholder=obj.cardholder, token=obj.token or None, last_four=obj.last_four or None,
            expires_on=obj.expires_on,
        )  # fmt: skip
        adopt(obj, created)

    def _set_state(self, request: HttpRequest, queryset: QuerySet[Card], state: str) -> None:
        changed = 0
        for card in queryset:
            try:
                services.set_card_state(
                    card=card, state=state, actor=request.user, reason=f"{state} in the admin"
                )
                changed += 1
            except DomainError as error:
                self.message_user(request, f"{card.token}: {error.message}", messages.ERROR)
        self.message_user(request, f"{changed} card(s) now {state}")

    @admin.action(description="Suspend selected cards", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Card]) -> None:
        self._set_state(request, queryset, Card.State.SUSPENDED)

    @admin.action(description="Reactivate selected cards", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Card]) -> None:
        self._set_state(request, queryset, Card.State.ACTIVE)
