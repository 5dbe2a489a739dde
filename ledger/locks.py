"""Row locks, always taken in primary-key order so concurrent postings queue, not deadlock."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from ledger.models import Account, Hold


def lock_accounts(*, ids: Iterable[int]) -> dict[int, Account]:
    """Lock the accounts (sorted by pk); iterating the queryset takes the locks."""
    rows = Account.objects.select_for_update().filter(pk__in=set(ids)).order_by("pk")
    return {account.pk: account for account in rows}


def lock_hold_chain(*, hold: Hold) -> list[Hold]:
    """Lock an authorization and its incrementals, oldest first."""
    root_id = hold.original_id or hold.pk
    rows = Hold.objects.select_for_update().filter(Q(pk=root_id) | Q(original_id=root_id))
    return list(rows.order_by("pk"))
