"""`card_config_changed`: what a card's cache record depends on changed, and is committed.

Sent with `card_ids: list[int]` by every service that changes a card's state, its
cardholder's status, or the controls, limits, fraud rules, MCC groups, timezone or fallback
policy that apply to it. The JIT app listens and pushes fresh records to Redis.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.dispatch import Signal

from cards.models import Card

card_config_changed = Signal()  # kwargs: card_ids: list[int]


def announce_card_config_change(*, card_ids: Iterable[int]) -> None:
    """Send `card_config_changed` once the surrounding transaction commits (never if it rolls
    back), so listeners read the committed rows.

    Robust: the change is committed by then, so a failing listener is logged, not raised into
    the request; the cache drift check catches a push that never happened.
    """
    ids = sorted(set(card_ids))
    if ids:
        transaction.on_commit(
            lambda: card_config_changed.send(sender=Card, card_ids=ids), robust=True
        )
