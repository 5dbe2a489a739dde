"""Signals the ledger sends so derived state (the Redis balance cache) can follow it.

The ledger imports no app; the gateway listens. Receivers should act on commit only.
"""

from django.dispatch import Signal

# sender=Wallet, wallet=<Wallet>: a cardholder's wallet was opened.
wallet_opened = Signal()

# sender=LedgerTransaction, posting=<LedgerTransaction>, available_deltas={account_id: delta}:
# a new posting moved one or more cardholders' available balances (replays send nothing).
available_changed = Signal()
