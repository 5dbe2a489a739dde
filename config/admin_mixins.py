"""Admin building blocks shared by every app."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest
from django.utils.functional import cached_property


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


def is_ops(user: Any) -> bool:
    """Ops staff (group `Ops`) or a superuser: the people who change things and watch the
    gateway. Support agents only read."""
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name="Ops").exists()


def in_timezone(value: datetime | None, tz_name: str) -> str:
    """A moment as people of the program read it: "2026-05-01 14:03:22 EDT"."""
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(tz_name)).strftime("%Y-%m-%d %H:%M:%S %Z")


def admin_page_context(request: HttpRequest, *, title: str, **context: Any) -> dict[str, Any]:
    """The admin's chrome (header, sidebar, user links) for a page of our own."""
    return {**admin.site.each_context(request), "title": title, **context}


def audit_admin_write(
    request: HttpRequest,
    *,
    target: Any,
    action: str,
    before: dict[str, Any] | None = None,
    reason: str = "",
    deleted: bool = False,
) -> None:
    """The audit row of an admin write that has no service of its own to write it (creating
    a program, cardholder or card; editing a cardholder's name; MCC groups). Call it inside
    the admin's transaction, after the row is saved (or deleted: `target` then carries the
    deleted row's pk)."""
    from ledger.audit import record_audit_event, snapshot

    after = None if deleted else snapshot(target)
    if before is not None and before == after:
        return  # saved unchanged: nothing to record
    record_audit_event(
        actor=request.user,
        action=action,
        target=target,
        reason=reason or f"changed in the admin by {request.user.get_username()}",
        before=before,
        after=after,
    )


def stored_snapshot(instance: Any) -> dict[str, Any] | None:
    """The row as it is in the database now (the admin's instance already holds the form's
    new values), for an audit event's `before`."""
    from ledger.audit import snapshot

    if instance.pk is None:
        return None
    stored = type(instance)._default_manager.filter(pk=instance.pk).first()
    return None if stored is None else snapshot(stored)


class EstimatedCountPaginator(Paginator):
    """Pages of a table of millions of rows without reading all of them to count them.

    Unfiltered, the count is PostgreSQL's estimate of the table's rows (`pg_class.reltuples`,
    kept by autovacuum's ANALYZE); filtered, or while the table is small, the exact count.
    Pair it with `show_full_result_count = False`, which drops the admin's second count.
    """

    EXACT_BELOW = 100_000

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            estimate = estimated_rows(self.object_list.model)
            if estimate >= self.EXACT_BELOW:
                return estimate
        return super().count


def estimated_rows(model: type) -> int:
    """The planner's row estimate of the model's table (-1 or 0 before its first ANALYZE)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [model._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else -1
