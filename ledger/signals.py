"""Signals the ledger sends so derived state (the Redis balance cache) can follow it.

The ledger imports no app; the gateway listens. Receivers should act on commit only.
"""

from dataclasses import dataclass

from django.dispatch import Signal


@dataclass(frozen=True, slots=True)
class AvailableChange:
    """One new posting's moves of available balances: {available account id: natural delta}."""

    ledger_key: str  # the posting's idempotency key: the cache applies each key once
    actor: str
    deltas: dict[int, int]


# sender=Wallet, wallet=<Wallet>: a cardholder's wallet was opened.
wallet_opened = Signal()

# sender=LedgerTransaction, changes=[AvailableChange, ...]: new postings moved cardholders'
# available balances (replays send nothing). One posting sends one change; a batch sends all.
available_changed = Signal()
