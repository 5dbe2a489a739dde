"""Keep the Redis balance cache in step with PostgreSQL, after each commit.

Postings the gateway made itself (approvals and advices already applied by the decision
script) are skipped; every other posting that moves an available balance is pushed once, keyed
by its ledger idempotency key, so a webhook and a JIT advice for one event move it once.
The moves are kept in PostgreSQL in the posting's transaction until Redis has them, so a crash
or an outage between the commit and the push delays them, never loses them (`jit.pushes`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from cards.signals import card_config_changed
from jit import cache, pushes
from ledger.models import Wallet
from ledger.signals import AvailableChange, available_changed, wallet_opened

logger = logging.getLogger("jit.cache")
GATEWAY_ACTOR = "jit-gateway"  # postings the ledger writer makes from decision events
STANDIN_ACTOR = "jit-standin"  # postings of stand-in answers: the cache learns of them here


@receiver(wallet_opened, dispatch_uid="jit.cache.wallet_opened")
def add_wallet_to_cache(sender: type, wallet: Wallet, **_: Any) -> None:
    transaction.on_commit(
        lambda: cache.ensure_account(
            user_token=wallet.holder_token, currency_code=wallet.currency_code
        ),
        robust=True,
    )


@receiver(available_changed, dispatch_uid="jit.cache.available_changed")
def push_available_deltas(sender: type, changes: list[AvailableChange], **_: Any) -> None:
    """One holder lookup, one kept row and one on-commit push for however many postings (a
    clearing batch)."""
    changes = [change for change in changes if change.actor != GATEWAY_ACTOR]
    if not changes:
        return
    account_ids = {account_id for change in changes for account_id in change.deltas}
    holders = dict(
        Wallet.objects.filter(available_id__any=account_ids).values_list(
            "available_id", "holder_token"
        )
    )

    moves = [
        cache.AvailableMove(
            user_token=holders[account_id], ledger_key=change.ledger_key, delta_minor=delta
        )
        for change in changes
        for account_id, delta in change.deltas.items()
    ]
    pushes.record_moves(moves)


@receiver(card_config_changed, dispatch_uid="jit.cache.card_config_changed")
def push_changed_cards(sender: type, card_ids: list[int], **_: Any) -> None:
    """Sent on commit already: controls, state or policy changes reach the gateway now."""
    from jit.sync import push_cards
    from jit.tasks import CARD_BATCH

    for start in range(0, len(card_ids), CARD_BATCH):  # a program-wide change: many cards
        push_cards(card_ids=card_ids[start : start + CARD_BATCH])
