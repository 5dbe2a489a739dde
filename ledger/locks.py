"""Row locks, always taken in primary-key order so concurrent postings queue, not deadlock."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from ledger.models import Account, Hold


def lock_accounts(*, ids: Iterable[int]) -> dict[int, Account]:
    """Lock the accounts (sorted by pk); iterating the queryset takes the locks."""
    rows = Account.objects.select_for_update().filter(pk__any=set(ids)).order_by("pk")
    return {account.pk: account for account in rows}


def lock_hold_chain(*, hold: Hold) -> list[Hold]:
    """Lock an authorization and its incrementals, oldest first."""
    return lock_hold_chains(root_ids=[hold.original_id or hold.pk])[hold.original_id or hold.pk]


def lock_hold_chains(*, root_ids: Iterable[int]) -> dict[int, list[Hold]]:
    """Lock many chains in one statement (pk order): {root id: the chain, oldest first}."""
    roots = set(root_ids)
    rows = Hold.objects.select_for_update().filter(Q(pk__any=roots) | Q(original_id__any=roots))
    chains: dict[int, list[Hold]] = {root_id: [] for root_id in roots}
    for hold in rows.order_by("pk"):
        chains[hold.original_id or hold.pk].append(hold)
    return chains
