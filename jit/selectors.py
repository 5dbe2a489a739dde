"""Reads that combine the cache (what is spendable now) with the ledger (what is settled)."""

from __future__ import annotations

import redis

from cards.models import Cardholder
from cards.selectors import cardholder_balances
from jit import cache
from ledger.selectors import Balances


def live_balances(*, cardholder: Cardholder) -> tuple[Balances, str]:
    """Balances where `available` reflects every approval at once (the cache), and the source.

    The ledger's total (available + held) moves only on deposits, clearings and the like, so
    `pending` is that total minus the cached available. Without a cache entry (Redis down or
    not rebuilt yet) the ledger's own figures are returned, marked as such.
    """
    ledger = cardholder_balances(cardholder=cardholder)
    try:
        available = cache.cached_available(user_token=cardholder.token)
    except redis.RedisError:
        available = None
    if available is None:
        return ledger, "ledger"
    live = Balances(
        currency_code=ledger.currency_code,
        available_minor=available,
        pending_minor=ledger.ledger_minor - available,
    )
    return live, "cache"
