"""PostgreSQL refuses bad ledger rows on its own, even when Python is bypassed (raw SQL)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from ledger.models import Hold, LedgerEntry, LedgerTransaction
from tests.ledger.helpers import balances, hold

pytestmark = pytest.mark.django_db


def _insert_transaction(cursor, key: str) -> int:
    cursor.execute(
        "INSERT INTO ledger_ledgertransaction (kind, idempotency_key, actor, memo, metadata,"
        " created_at) VALUES ('deposit', %s, 'raw-sql', '', '{}', now()) RETURNING id",
        [key],
    )
    return cursor.fetchone()[0]


def test_given_raw_sql_when_unbalanced_entries_committed_then_database_refuses(funded_wallet):
    before = balances(funded_wallet)
    # when / then: the statement-level trigger refuses the INSERT itself
    with (  # noqa: PT012 - several raw statements make the one refused write
        pytest.raises(IntegrityError, match="does not balance"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        tx_id = _insert_transaction(cursor, "raw-unbalanced")
        cursor.execute(
            "INSERT INTO ledger_ledgerentry (transaction_id, account_id, amount_minor,"
            " currency_code) VALUES (%s, %s, 500, 'USD')",
            [tx_id, funded_wallet.book.funding_bank_id],
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert not LedgerTransaction.objects.filter(idempotency_key="raw-unbalanced").exists()
    assert balances(funded_wallet) == before


def test_given_raw_sql_when_balanced_entries_committed_then_accepted(funded_wallet):
    with transaction.atomic(), connection.cursor() as cursor:
        tx_id = _insert_transaction(cursor, "raw-balanced")
        cursor.execute(
            "INSERT INTO ledger_ledgerentry (transaction_id, account_id, amount_minor,"
            " currency_code) VALUES (%s, %s, 500, 'USD'), (%s, %s, -500, 'USD')",
            [tx_id, funded_wallet.book.funding_bank_id, tx_id, funded_wallet.available_id],
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert LedgerEntry.objects.filter(transaction_id=tx_id).count() == 2


def test_given_balanced_posting_when_a_later_statement_adds_one_entry_then_refused(
    funded_wallet,
):
    # given: a posting the ledger wrote (balanced)
    posted = LedgerTransaction.objects.filter(entries__account=funded_wallet.available).first()
    # when / then: one more entry on it, in a statement of its own
    with (  # noqa: PT012 - the refused write is the one INSERT
        pytest.raises(IntegrityError, match="does not balance"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO ledger_ledgerentry (transaction_id, account_id, amount_minor,"
            " currency_code) VALUES (%s, %s, 100, 'USD')",
            [posted.pk, funded_wallet.available_id],
        )
    assert posted.entries.count() == 2


def test_given_posted_entry_when_updated_by_raw_sql_then_database_refuses(funded_wallet):
    entry = LedgerEntry.objects.first()
    with (  # noqa: PT012 - several raw statements make the one refused write
        pytest.raises(IntegrityError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE ledger_ledgerentry SET amount_minor = amount_minor * 2 WHERE id = %s",
            [entry.pk],
        )
    entry.refresh_from_db()
    assert abs(entry.amount_minor) == 10_000


def test_given_posted_entry_when_deleted_by_raw_sql_then_database_refuses(funded_wallet):
    with (  # noqa: PT012 - several raw statements make the one refused write
        pytest.raises(IntegrityError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM ledger_ledgerentry")
    assert LedgerEntry.objects.count() == 2


def test_given_posted_transaction_when_key_rewritten_then_database_refuses(funded_wallet):
    with (  # noqa: PT012 - several raw statements make the one refused write
        pytest.raises(IntegrityError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE ledger_ledgertransaction SET idempotency_key = 'forged'")


def test_given_entry_when_currency_differs_from_account_then_database_refuses(funded_wallet):
    with (  # noqa: PT012 - several raw statements make the one refused write
        pytest.raises(IntegrityError, match="another currency"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        tx_id = _insert_transaction(cursor, "raw-currency")
        cursor.execute(
            "INSERT INTO ledger_ledgerentry (transaction_id, account_id, amount_minor,"
            " currency_code) VALUES (%s, %s, 500, 'EUR'), (%s, %s, -500, 'EUR')",
            [tx_id, funded_wallet.book.funding_bank_id, tx_id, funded_wallet.available_id],
        )


def test_given_same_idempotency_key_when_inserted_twice_then_unique_constraint_refuses(
    funded_wallet,
):
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        _insert_transaction(cursor, "deposit:seed")  # the funded_wallet deposit's key


def test_given_hold_when_remaining_raised_above_amount_then_check_constraint_refuses(
    funded_wallet,
):
    placed = hold(funded_wallet, 1_000, "jit:x")
    with pytest.raises(IntegrityError), transaction.atomic():
        Hold.objects.filter(pk=placed.pk).update(remaining_minor=1_001)


def test_given_held_account_when_forced_negative_then_check_constraint_refuses(funded_wallet):
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_account SET balance_minor = -1 WHERE id = %s", [funded_wallet.held_id]
        )
