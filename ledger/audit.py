"""`audited(...)`: snapshot a target before a change and write an `AuditEvent` after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.forms.models import model_to_dict

from ledger.models import AuditEvent


def snapshot(instance: models.Model) -> dict[str, Any]:
    """The instance's field values as JSON-safe data (related rows by primary key)."""
    return {key: _jsonable(value) for key, value in model_to_dict(instance).items()}


def _jsonable(value: object) -> object:
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, str | int | bool | dict):
        return value
    return str(value)


def _actor_fields(actor: AbstractBaseUser | AnonymousUser | None) -> dict[str, Any]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return {"actor": None, "actor_label": "system"}
    return {"actor": actor, "actor_label": actor.get_username()}


def _audit_row(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    target: models.Model,
    reason: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        **_actor_fields(actor),
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        reason=reason,
        before=before,
        after=after,
    )


def record_audit_event(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    target: models.Model,
    reason: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit row; call it inside the transaction that makes the change."""
    event = _audit_row(
        actor=actor, action=action, target=target, reason=reason, before=before, after=after
    )
    event.save()
    return event


def record_audit_events(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    targets: list[models.Model],
    reasons: list[str],
    afters: list[dict[str, Any]],
) -> None:
    """`record_audit_event` for many targets of one action (one INSERT)."""
    AuditEvent.objects.bulk_create(
        _audit_row(actor=actor, action=action, target=target, reason=reason, after=after)
        for target, reason, after in zip(targets, reasons, afters, strict=True)
    )


@contextmanager
def audited(
    *,
    target: models.Model,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    reason: str = "",
) -> Iterator[None]:
    """Snapshot `target`, run the block, then record before/after in the same transaction."""
    before = snapshot(target) if target.pk else None
    yield
    target.refresh_from_db()
    record_audit_event(
        actor=actor,
        action=action,
        target=target,
        reason=reason,
        before=before,
        after=snapshot(target),
    )
