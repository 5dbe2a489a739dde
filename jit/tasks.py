"""Periodic gateway upkeep. Each task is safe to run twice."""

from __future__ import annotations

from celery import shared_task

from cards.models import Card
from jit.standin import replay_standin_spool
from jit.sync import push_cards

CARD_BATCH = 1_000


@shared_task(acks_late=True)
def replay_standin_spool_task() -> int:
    """Stand-ins answered while Redis was away reach the ledger (and the cache) once."""
    return replay_standin_spool().decisions


@shared_task(acks_late=True)
def refresh_card_records_task() -> int:
    """Re-push every card's record: its timezone table looks two years ahead, and a push lost
    while Redis was away is repaired here too."""
    pushed = 0
    ids = list(Card.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), CARD_BATCH):
        pushed += push_cards(card_ids=ids[start : start + CARD_BATCH])
    return pushed
