"""Admin building blocks shared by every app."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """For records that never change once written: no add, no change, no delete."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NoDeleteAdminMixin:
    """Configuration rows are deactivated, never deleted (ledger rows point at them)."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def money_column(description: str, *, amount_field: str) -> Any:
    """An admin column that shows `<amount_field>` formatted in the row's currency."""
    from ledger.money import format_money

    @admin.display(description=description, ordering=amount_field)
    def column(self: admin.ModelAdmin, row: Any) -> str:
        return format_money(getattr(row, amount_field), row.currency_code)

    return column


def adopt(form_instance: Any, created: Any) -> None:
    """After a service created the row, make the admin's unsaved instance that row.

    The admin logs and redirects with the instance it built from the form; copying the saved
    field values keeps the log and the redirect right without a second write.
    """
    for field in created._meta.concrete_fields:
        setattr(form_instance, field.attname, getattr(created, field.attname))
    form_instance._state.adding = False
