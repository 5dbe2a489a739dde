"""Hold expiry (ARCHITECTURE.md §4): release what no clearing came for, warn before it.

    expire_due_holds(*, now, batch_size, limit)   release open holds past `expires_at`
    flag_stale_holds(*, now, warning, overdue)    `stale_hold` exceptions, once per hold and stage

A hold's expiry is set when it is placed, per MCC group (`cards.selectors.hold_expires_at`:
default 7 days, lodging and car rental 30). An authorization chain (the first hold and its
incrementals) expires with its first hold and is released whole under `expiry:<key>`, so a
second run releases nothing twice. A clearing that arrives later still charges: from available
(`ledger.services.clear_hold`), or as a force post if its hold cannot be found.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from config.errors import DomainError
from ledger.errors import HoldNotOpen
from ledger.models import Hold, HoldStatus
from ledger.services import expire_hold
from reconciliation.models import ExceptionKind as Kind
from reconciliation.models import ReconciliationException
from reconciliation.services import open_exception

logger = logging.getLogger("reconciliation.expiry")
WARNING, OVERDUE = "expires_soon", "overdue"


@dataclass(frozen=True, slots=True)
class ExpiryRun:
    expired: int  # chains released
    skipped: int  # closed by a clearing meanwhile, or refused (logged)


def _open_roots(*, expires_before: datetime, after_pk: int, batch_size: int) -> list[Hold]:
    return list(
        Hold.objects.filter(
            status=HoldStatus.OPEN,
            original__isnull=True,
            expires_at__lt=expires_before,
            pk__gt=after_pk,
        ).order_by("pk")[:batch_size]
    )


def expire_due_holds(
    *, now: datetime | None = None, batch_size: int = 500, limit: int = 100_000
) -> ExpiryRun:
    """Release every open authorization whose expiry has passed, `batch_size` at a time.

    Each chain is released in its own transaction (short row locks; a clearing racing it
    either clears first, and the hold is skipped, or clears the expired hold from available).
    Walks forward by primary key, so a hold the ledger refuses is not retried in the same run.
    """
    now = now or timezone.now()
    expired = skipped = after_pk = 0
    while expired + skipped < limit:
        roots = _open_roots(expires_before=now, after_pk=after_pk, batch_size=batch_size)
        if not roots:
            break
        for hold in roots:
            after_pk = hold.pk
            try:
                expire_hold(hold=hold)
                expired += 1
            except HoldNotOpen:
                skipped += 1  # cleared or released since it was read
            except DomainError as error:
                skipped += 1
                logger.error("hold %s not expired: %s", hold.authorization_key, error.message)
    if expired:
        logger.info("released %s expired hold(s)", expired)
    return ExpiryRun(expired=expired, skipped=skipped)


def _stale(hold: Hold, *, stage: str, now: datetime) -> ReconciliationException:
    due_in = hold.expires_at - now
    return open_exception(
        kind=Kind.STALE_HOLD,
        dedupe_key=f"stale_hold:{stage}:{hold.authorization_key}",
        hold=hold,
        ledger_transaction=hold.placed_by,
        card_token=hold.card_token,
        user_token=hold.wallet.holder_token,
        amount_minor=hold.remaining_minor,
        currency_code=hold.currency_code,
        details={
            "stage": stage,
            "expires_at": hold.expires_at.isoformat(),
            "hours_to_expiry": round(due_in.total_seconds() / 3600, 1),
            "authorization_key": hold.authorization_key,
            "mcc": hold.mcc,
            "merchant_name": hold.merchant_name,
        },
    )


def _flag(holds: list[Hold], *, stage: str, now: datetime) -> int:
    keys = {f"stale_hold:{stage}:{hold.authorization_key}": hold for hold in holds}
    known = set(
        ReconciliationException.objects.filter(dedupe_key__in=keys).values_list(
            "dedupe_key", flat=True
        )
    )
    fresh = [hold for key, hold in keys.items() if key not in known]
    for hold in fresh:
        _stale(hold, stage=stage, now=now)
    return len(fresh)


def flag_stale_holds(
    *,
    now: datetime | None = None,
    warning: timedelta,
    overdue: timedelta,
    batch_size: int = 1000,
) -> dict[str, int]:
    """`stale_hold` for open authorizations about to expire (within `warning`) and for those
    still open more than `overdue` past their expiry (the expiry task could not release them).

    One exception per hold and stage (`stale_hold:<stage>:<authorization key>`); returns how
    many were opened per stage.
    """
    now = now or timezone.now()
    bands = {
        WARNING: {"expires_at__gte": now, "expires_at__lt": now + warning},
        OVERDUE: {"expires_at__lt": now - overdue},
    }
    opened = {}
    for stage, band in bands.items():
        opened[stage], after_pk = 0, 0
        while True:
            holds = list(
                Hold.objects.select_related("wallet", "placed_by")
                .filter(status=HoldStatus.OPEN, original__isnull=True, pk__gt=after_pk, **band)
                .order_by("pk")[:batch_size]
            )
            if not holds:
                break
            after_pk = holds[-1].pk
            opened[stage] += _flag(holds, stage=stage, now=now)
    return opened
