"""Test helpers for ledger state, read through the real selectors."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from ledger.models import Hold, Wallet
from ledger.selectors import (
    drifted_running_balances,
    holds_out_of_step,
    unbalanced_transactions,
    wallet_balances,
)
from ledger.services import place_hold


def balances(wallet: Wallet) -> tuple[int, int]:
    """(available, pending) in minor units."""
    current = wallet_balances(wallet=wallet)
    return current.available_minor, current.pending_minor


def hold(wallet: Wallet, amount_minor: int, key: str, **kwargs: object) -> Hold:
    return place_hold(
        wallet=wallet,
        amount_minor=amount_minor,
        authorization_key=key,
        expires_at=timezone.now() + timedelta(days=7),
        **kwargs,
    )


def assert_ledger_consistent() -> None:
    """The invariants every test may end with."""
    assert unbalanced_transactions() == []
    assert drifted_running_balances() == []
    assert holds_out_of_step() == []
