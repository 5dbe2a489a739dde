"""Reads of ledger state. Balances are stored running totals: O(1), no SUM over entries."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from ledger.models import Account, Hold, HoldStatus, Wallet


@dataclass(frozen=True, slots=True)
class Balances:
    """`ledger` = `available` + `pending`; `pending` is what open holds reserve."""

    currency_code: str
    available_minor: int
    pending_minor: int

    @property
    def ledger_minor(self) -> int:
        return self.available_minor + self.pending_minor


def wallet_balances(*, wallet: Wallet) -> Balances:
    """The cardholder's balances as the ledger knows them (one indexed query)."""
    rows = dict(
        Account.objects.filter(pk__in=[wallet.available_id, wallet.held_id]).values_list(
            "pk", "balance_minor"
        )
    )
    return Balances(
        currency_code=wallet.currency_code,
        available_minor=rows[wallet.available_id],
        pending_minor=rows[wallet.held_id],
    )


def open_holds(*, wallet: Wallet) -> list[Hold]:
    return list(wallet.holds.filter(status=HoldStatus.OPEN).order_by("pk"))


def hold_by_authorization_key(*, authorization_key: str) -> Hold | None:
    return Hold.objects.filter(authorization_key=authorization_key).first()


def unbalanced_transactions() -> list[int]:
    """Ids of transactions whose entries do not sum to zero per currency (should be none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT transaction_id FROM ledger_ledgerentry "
            "GROUP BY transaction_id, currency_code HAVING SUM(amount_minor) <> 0"
        )
        return [row[0] for row in cursor.fetchall()]


def drifted_running_balances() -> list[str]:
    """Codes of accounts whose stored balance differs from the sum of their entries."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.code FROM ledger_account a
            LEFT JOIN ledger_ledgerentry e ON e.account_id = a.id
            GROUP BY a.id, a.code, a.kind, a.balance_minor
            HAVING a.balance_minor <> CASE WHEN a.kind IN ('funding_bank', 'adjustments')
                THEN COALESCE(SUM(e.amount_minor), 0) ELSE -COALESCE(SUM(e.amount_minor), 0) END
            """
        )
        return [row[0] for row in cursor.fetchall()]


def holds_out_of_step() -> list[str]:
    """Wallets whose held account differs from the sum of their open holds (should be none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT w.holder_token FROM ledger_wallet w
            JOIN ledger_account h ON h.id = w.held_id
            LEFT JOIN ledger_hold o ON o.wallet_id = w.id AND o.status = 'open'
            GROUP BY w.id, w.holder_token, h.balance_minor
            HAVING h.balance_minor <> COALESCE(SUM(o.remaining_minor), 0)
            """
        )
        return [row[0] for row in cursor.fetchall()]
