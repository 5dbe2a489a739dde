"""Load the cache from PostgreSQL: cards on every config change, everything on a rebuild.

The cache is derived, never the truth. `rebuild_balance_cache` first drains the outbox (so
every approval the cache made is in the ledger), then writes each account's available balance,
each open hold's remaining amount, each card's record and velocity counters from PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from cards.controls import card_cache_record
from cards.models import Card
from jit import cache, keys, pushes, windows
from jit.models import JitDecision
from jit.outbox import drain_outbox
from jit.redis_client import maintenance_redis
from ledger.models import Hold, HoldStatus, Wallet

logger = logging.getLogger("jit.cache")


def push_cards(*, card_ids: Iterable[int]) -> int:
    """Write the cache record of each card (state, controls, fraud rules, timezone)."""
    cards = Card.objects.filter(pk__in=list(card_ids)).select_related("cardholder__program")
    for card in cards:
        cache.put_card(
            user_token=card.cardholder.token,
            card_token=card.token,
            record=card_cache_record(card=card),
        )
    return len(cards)


@dataclass(frozen=True, slots=True)
class RebuildReport:
    drained_events: int
    accounts: int
    cards: int
    open_holds: int
    answers: int = 0  # idempotency records restored (decisions still within their TTL)


def _push_accounts() -> int:
    """Every wallet's available balance, read while no posting can add a pending cache push."""
    with transaction.atomic():
        pushes.settle_for_rebuild()
        wallets = Wallet.objects.select_related("available")
        for wallet in wallets.iterator(chunk_size=2_000):
            cache.put_account(
                user_token=wallet.holder_token,
                available_minor=wallet.available.balance_minor,
                currency_code=wallet.currency_code,
            )
        return wallets.count()


def _push_open_holds() -> int:
    """Each authorization chain's remaining amount, so reversal advices release it in cache."""
    client = maintenance_redis()
    roots = Hold.objects.filter(original__isnull=True, jit_funding_token__gt="").select_related(
        "wallet"
    )
    count = 0
    for root in roots.filter(status=HoldStatus.OPEN).iterator(chunk_size=2_000):
        remaining = root.remaining_minor + sum(
            h.remaining_minor for h in root.incrementals.filter(status=HoldStatus.OPEN)
        )
        key = keys.hold_key(root.wallet.holder_token, root.jit_funding_token)
        client.hset(key, mapping={"amount": root.amount_minor, "remaining": remaining})
        count += 1
    return count


def _push_answers() -> int:
    """The idempotency record of every decision still inside its TTL, from `JitDecision`.

    Without them a Marqeta retry after the rebuild is decided again: the cache would move a
    second time (the ledger, keyed on the token, once), and a declined token could come back
    approved with no hold behind it.
    """
    ttl = settings.JIT_IDEMPOTENCY_TTL_SECONDS
    now = timezone.now()
    client = maintenance_redis()
    decisions = JitDecision.objects.filter(decided_at__gte=now - timedelta(seconds=ttl))
    count = 0
    pipe = client.pipeline(transaction=False)
    for decision in decisions.iterator(chunk_size=2_000):
        left = ttl - int((now - decision.decided_at).total_seconds())
        record = cache.stored_answer_record(
            fingerprint=cache.fingerprint_of(
                method=decision.method,
                user_token=decision.user_token,
                card_token=decision.card_token,
                amount_minor=decision.amount_minor,
                currency_code=decision.currency_code,
            ),
            decline_reason=decision.decline_reason,
            reason_code=decision.reason_code,
            available_minor=decision.available_after_minor,
            rule_hits=decision.rule_hits,
        )
        key = keys.idempotency_key(decision.user_token, decision.jit_funding_token)
        pipe.set(key, record, ex=max(1, left), nx=True)  # a newer live answer wins
        count += 1
        if count % 2_000 == 0:
            pipe.execute()
    pipe.execute()
    return count


def _push_velocity(card: Card) -> None:
    """Velocity counters recomputed from recorded approvals, per the program's calendar."""
    user, program = card.cardholder.token, card.cardholder.program
    client = maintenance_redis()
    for counter_key, scope in (
        (keys.card_velocity_key(user, card.token), Q(card_token=card.token)),
        (keys.user_velocity_key(user), Q(user_token=user)),
    ):
        mapping: dict[str, int] = {}
        for prefix, window_id, since in windows.current(program.timezone).values():
            approved = JitDecision.objects.filter(
                scope, outcome="approved", op="auth", decided_at__gte=since
            ).aggregate(amount=Sum("amount_minor"), count=Count("pk"))
            mapping |= {
                f"{prefix}_id": window_id,
                f"{prefix}_amt": approved["amount"] or 0,
                f"{prefix}_cnt": approved["count"],
            }
        client.delete(counter_key)
        client.hset(counter_key, mapping=mapping)


def rebuild_balance_cache() -> RebuildReport:
    """Recompute the whole cache from the ledger. Run when Redis was flushed or lost."""
    drained = drain_outbox(consumer="rebuild")  # never the running writer's name
    accounts = _push_accounts()
    cards = Card.objects.select_related("cardholder__program")
    for card in cards.iterator(chunk_size=1_000):
        push_cards(card_ids=[card.pk])
        _push_velocity(card)
    report = RebuildReport(
        drained_events=drained,
        accounts=accounts,
        cards=cards.count(),
        open_holds=_push_open_holds(),
        answers=_push_answers(),
    )
    logger.info("balance cache rebuilt: %s", report)
    return report
