"""Cache pushes that survive a crash: the moves are kept in PostgreSQL until Redis has them.

A ledger posting that moves available balances (a clearing, a deposit, a webhook's release)
commits first and tells Redis after. Between the two a process can be killed or Redis can be
away; a push kept only in memory would then be lost and the cache would show money the ledger
has spent. So the moves are written in the posting's own transaction (`PendingCachePush`),
pushed on commit, and deleted once Redis applied them. What is left behind is pushed by
`push_overdue`, which the ledger writers run every few seconds. Redis applies each ledger key
at most once, so a push repeated after a crash between the push and the delete is harmless.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from jit import cache
from jit.models import PendingCachePush

logger = logging.getLogger("jit.cache")
OVERDUE_SECONDS = 5.0  # a live push takes milliseconds: older rows were left behind
OVERDUE_BATCH = 200


def record_moves(moves: list[cache.AvailableMove]) -> None:
    """Inside the posting's transaction: keep the moves, and push them once it commits."""
    pending = PendingCachePush.objects.create(moves=[_as_row(move) for move in moves])
    transaction.on_commit(lambda: _push(pending.pk, moves), robust=True)


def _as_row(move: cache.AvailableMove) -> list[str | int]:
    return [move.user_token, move.ledger_key, move.delta_minor]


def moves_of(pending: PendingCachePush) -> list[cache.AvailableMove]:
    return [
        cache.AvailableMove(user_token=user, ledger_key=key, delta_minor=int(delta))
        for user, key, delta in pending.moves
    ]


def _push(pending_id: int, moves: list[cache.AvailableMove]) -> None:
    cache.apply_available_moves(moves)  # raises while Redis is away: the row stays
    PendingCachePush.objects.filter(pk=pending_id).delete()


def push_overdue(*, older_than_seconds: float = OVERDUE_SECONDS) -> int:
    """Push what a crash or an outage left behind; the rows pushed (0 when none).

    Rows are locked with SKIP LOCKED, so writers sweeping at once share the work.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    pushed = 0
    while True:
        with transaction.atomic():
            rows = list(
                PendingCachePush.objects.select_for_update(skip_locked=True)
                .filter(created_at__lte=cutoff)
                .order_by("pk")[:OVERDUE_BATCH]
            )
            if not rows:
                return pushed
            cache.apply_available_moves([move for row in rows for move in moves_of(row)])
            PendingCachePush.objects.filter(pk__in=[row.pk for row in rows]).delete()
        pushed += len(rows)
        logger.warning("pushed %s cache moves left behind by a crash or an outage", len(rows))


def settle_for_rebuild() -> int:
    """Call inside the rebuild's transaction, before it reads the ledger's balances.

    The table lock waits for postings still writing their moves and holds new ones back
    until the rebuild commits, so the balances it reads include exactly the pending rows it
    sees. Those are marked applied in Redis (a late live push of them does nothing) and
    deleted (the sweep will not add them a second time).
    """
    with connection.cursor() as cursor:
        cursor.execute(f'LOCK TABLE "{PendingCachePush._meta.db_table}" IN EXCLUSIVE MODE')
    rows = list(PendingCachePush.objects.all())
    cache.mark_moves_applied([move for row in rows for move in moves_of(row)])
    PendingCachePush.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return len(rows)
