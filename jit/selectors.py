"""Reads that combine the cache (what is spendable now) with the ledger (what is settled)."""

from __future__ import annotations

from collections import defaultdict

import redis

from cards.models import Card, Cardholder
from cards.selectors import cardholder_balances, remaining_limits
from jit import cache, windows
from jit.models import PendingCachePush
from jit.pushes import moves_of
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


def remaining_limits_now(*, card: Card) -> list[dict]:
    """Every spend limit of the card with what is left in its current window (for support)."""
    counters = cache.card_usage(user_token=card.cardholder.token, card_token=card.token)
    usage = windows.usage_from_counters(counters, card.cardholder.program.timezone)
    return remaining_limits(card=card, usage=usage)


def pending_count() -> int:
    """Postings whose cache moves Redis has not confirmed (the writers export it as a gauge)."""
    return PendingCachePush.objects.count()


def pending_deltas() -> dict[str, int]:
    """user_token -> what the ledger has moved that the cache may not have yet (drift check)."""
    deltas: dict[str, int] = defaultdict(int)
    for pending in PendingCachePush.objects.all():
        for move in moves_of(pending):
            deltas[move.user_token] += move.delta_minor
    return deltas
