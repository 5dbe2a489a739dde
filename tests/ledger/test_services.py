"""Ledger services: happy paths, failure paths and idempotent replays."""

from __future__ import annotations

import pytest

from ledger.errors import (
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
)
from ledger.models import (
    Clearing,
    HoldStatus,
    Kind,
    LedgerEntry,
    LedgerTransaction,
    NegativeBalance,
)
from ledger.services import (
    Merchant,
    clear_hold,
    deposit,
    expire_hold,
    force_post,
    refund,
    release_hold,
    reverse_transaction,
    withdraw,
)
from tests.ledger.helpers import assert_ledger_consistent, balances, hold

pytestmark = pytest.mark.django_db


def test_given_wallet_when_deposit_then_available_grows_and_bank_balances(wallet):
    # when
    deposit(wallet=wallet, amount_minor=2_500, idempotency_key="d1", actor="test")
    # then
    assert balances(wallet) == (2_500, 0)
    wallet.book.funding_bank.refresh_from_db()
    assert wallet.book.funding_bank.balance_minor == 2_500
    assert_ledger_consistent()


def test_given_deposit_when_replayed_then_same_posting_and_no_new_money(wallet):
    first = deposit(wallet=wallet, amount_minor=2_500, idempotency_key="d1", actor="test")
    # when
    again = deposit(wallet=wallet, amount_minor=2_500, idempotency_key="d1", actor="test")
    # then
    assert again.pk == first.pk
    assert balances(wallet) == (2_500, 0)
    assert LedgerTransaction.objects.filter(kind=Kind.DEPOSIT).count() == 1


def test_given_deposit_when_same_key_other_amount_then_conflict_and_nothing_moves(wallet):
    deposit(wallet=wallet, amount_minor=2_500, idempotency_key="d1", actor="test")
    # when / then
    with pytest.raises(IdempotencyConflict):
        deposit(wallet=wallet, amount_minor=9_999, idempotency_key="d1", actor="test")
    assert balances(wallet) == (2_500, 0)


@pytest.mark.parametrize("amount", [0, -5, 1.5, "10", True])
def test_given_bad_amount_when_deposit_then_refused_and_nothing_posted(wallet, amount):
    with pytest.raises(InvalidAmount):
        deposit(wallet=wallet, amount_minor=amount, idempotency_key="bad", actor="test")
    assert not LedgerTransaction.objects.exists()


def test_given_funds_when_withdraw_more_than_available_then_insufficient_funds(funded_wallet):
    with pytest.raises(InsufficientFunds) as refused:
        withdraw(wallet=funded_wallet, amount_minor=10_001, idempotency_key="w1", actor="test")
    assert refused.value.code == "INSUFFICIENT_FUNDS"
    assert balances(funded_wallet) == (10_000, 0)
    assert not LedgerTransaction.objects.filter(kind=Kind.WITHDRAWAL).exists()


def test_given_funds_when_withdraw_then_available_drops(funded_wallet):
    withdraw(wallet=funded_wallet, amount_minor=4_000, idempotency_key="w1", actor="test")
    assert balances(funded_wallet) == (6_000, 0)
    assert_ledger_consistent()


def test_given_funds_when_hold_placed_then_available_moves_to_pending_and_nothing_charged(
    funded_wallet,
):
    # when
    placed = hold(funded_wallet, 1_500, "jit:a", merchant=Merchant(mcc="5812"))
    # then
    assert balances(funded_wallet) == (8_500, 1_500)
    assert placed.is_open
    assert placed.remaining_minor == 1_500
    funded_wallet.book.settlement_payable.refresh_from_db()
    assert funded_wallet.book.settlement_payable.balance_minor == 0  # never charge on auth
    assert_ledger_consistent()


def test_given_hold_when_replayed_then_original_hold_returned(funded_wallet):
    first = hold(funded_wallet, 1_500, "jit:a")
    assert hold(funded_wallet, 1_500, "jit:a").pk == first.pk
    assert balances(funded_wallet) == (8_500, 1_500)


def test_given_hold_when_same_key_other_amount_then_conflict(funded_wallet):
    hold(funded_wallet, 1_500, "jit:a")
    with pytest.raises(IdempotencyConflict):
        hold(funded_wallet, 1_600, "jit:a")
    assert balances(funded_wallet) == (8_500, 1_500)


def test_given_low_balance_when_hold_then_insufficient_funds_and_nothing_held(funded_wallet):
    with pytest.raises(InsufficientFunds):
        hold(funded_wallet, 10_001, "jit:big")
    assert balances(funded_wallet) == (10_000, 0)


def test_given_standin_approval_when_hold_beyond_balance_then_posted_and_flagged(funded_wallet):
    # when
    placed = hold(funded_wallet, 12_000, "jit:standin", is_standin=True)
    # then
    assert placed.is_standin
    assert balances(funded_wallet) == (-2_000, 12_000)
    flag = NegativeBalance.objects.get(account=funded_wallet.available)
    assert flag.balance_minor == -2_000
    assert flag.resolved_at is None


def test_given_negative_balance_when_deposit_restores_it_then_flag_resolved(funded_wallet):
    hold(funded_wallet, 12_000, "jit:standin", is_standin=True)
    # when
    deposit(wallet=funded_wallet, amount_minor=5_000, idempotency_key="top-up", actor="test")
    # then
    assert NegativeBalance.objects.get().resolved_at is not None
    funded_wallet.available.refresh_from_db()
    assert funded_wallet.available.negative_since is None


def test_given_hold_when_incremental_then_chain_holds_the_sum(funded_wallet):
    original = hold(funded_wallet, 15_00, "jit:a-auth")
    # when
    incremental = hold(funded_wallet, 5_00, "jit:a-incr", original=original)
    # then
    assert incremental.original_id == original.pk
    assert balances(funded_wallet) == (80_00, 20_00)


def test_given_hold_when_fully_reversed_then_released_and_closed(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:c")
    # when
    release = release_hold(hold=placed, release_key="txn-c-rev")
    # then
    placed.refresh_from_db()
    assert release.amount_minor == 2_000
    assert placed.status == HoldStatus.CLOSED
    assert placed.remaining_minor == 0
    assert balances(funded_wallet) == (10_000, 0)
    assert_ledger_consistent()


def test_given_hold_when_partially_reversed_then_rest_stays_held(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:c")
    # when
    release_hold(hold=placed, release_key="advice-1", amount_minor=500)
    # then
    placed.refresh_from_db()
    assert placed.is_open
    assert placed.remaining_minor == 1_500
    assert balances(funded_wallet) == (8_500, 1_500)


def test_given_reversal_when_replayed_then_released_once(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:c")
    first = release_hold(hold=placed, release_key="rev", amount_minor=500)
    assert release_hold(hold=placed, release_key="rev", amount_minor=500).pk == first.pk
    assert balances(funded_wallet) == (8_500, 1_500)


def test_given_closed_hold_when_reversed_then_hold_not_open(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:c")
    clear_hold(hold=placed, amount_minor=2_000, clearing_key="clr")
    # when / then: a reversal after the clearing releases nothing
    with pytest.raises(HoldNotOpen):
        release_hold(hold=placed, release_key="late-rev")
    assert balances(funded_wallet) == (8_000, 0)


def test_given_hold_when_cleared_exactly_then_charged_and_closed(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:a")
    # when
    clearing = clear_hold(hold=placed, amount_minor=2_000, clearing_key="clr")
    # then
    placed.refresh_from_db()
    assert (clearing.from_hold_minor, clearing.excess_minor, clearing.released_minor) == (
        2_000,
        0,
        0,
    )
    assert placed.status == HoldStatus.CLOSED
    assert balances(funded_wallet) == (8_000, 0)
    funded_wallet.book.settlement_payable.refresh_from_db()
    assert funded_wallet.book.settlement_payable.balance_minor == 2_000
    assert_ledger_consistent()


def test_given_hold_when_cleared_for_less_then_rest_released(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:a")
    # when
    clearing = clear_hold(hold=placed, amount_minor=1_200, clearing_key="clr")
    # then
    assert clearing.released_minor == 800
    assert balances(funded_wallet) == (8_800, 0)


def test_given_hold_when_over_cleared_then_excess_from_available(funded_wallet):
    placed = hold(funded_wallet, 1_200, "jit:tip")
    # when: a tip, 12.00 -> 15.00
    clearing = clear_hold(hold=placed, amount_minor=1_500, clearing_key="clr")
    # then
    assert (clearing.from_hold_minor, clearing.excess_minor) == (1_200, 300)
    assert balances(funded_wallet) == (8_500, 0)
    assert_ledger_consistent()


def test_given_small_balance_when_over_cleared_beyond_it_then_negative_and_flagged(
    funded_wallet,
):
    placed = hold(funded_wallet, 10_000, "jit:all")
    clear_hold(hold=placed, amount_minor=10_500, clearing_key="clr")
    assert balances(funded_wallet) == (-500, 0)
    assert NegativeBalance.objects.filter(account=funded_wallet.available).exists()


def test_given_auth_with_incremental_when_multi_cleared_then_final_releases_rest(funded_wallet):
    # given: the worked example of MARQETA.md §11 (in a 100.00 wallet: 150+50 -> 15.00+5.00)
    original = hold(funded_wallet, 1_500, "jit-a-auth")
    hold(funded_wallet, 500, "jit-a-incr", original=original)
    # when
    clear_hold(hold=original, amount_minor=1_200, clearing_key="txn-a-clr1", is_final=False)
    after_first = balances(funded_wallet)
    final = clear_hold(hold=original, amount_minor=600, clearing_key="txn-a-clr2", is_final=True)
    # then
    assert after_first == (8_000, 800)
    assert final.released_minor == 200
    assert balances(funded_wallet) == (8_200, 0)
    assert set(original.__class__.objects.values_list("status", flat=True)) == {"closed"}
    assert_ledger_consistent()


def test_given_clearing_when_replayed_then_charged_once(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:a")
    first = clear_hold(hold=placed, amount_minor=2_000, clearing_key="clr")
    assert clear_hold(hold=placed, amount_minor=2_000, clearing_key="clr").pk == first.pk
    assert Clearing.objects.count() == 1
    assert balances(funded_wallet) == (8_000, 0)


def test_given_clearing_when_same_key_other_amount_then_conflict(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:a")
    clear_hold(hold=placed, amount_minor=2_000, clearing_key="clr")
    with pytest.raises(IdempotencyConflict):
        clear_hold(hold=placed, amount_minor=1_999, clearing_key="clr")


def test_given_expired_hold_when_late_clearing_then_still_charged(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:old")
    # when
    expire_hold(hold=placed)
    expired_balances = balances(funded_wallet)
    clearing = clear_hold(hold=placed, amount_minor=2_000, clearing_key="late")
    # then
    placed.refresh_from_db()
    assert placed.status == HoldStatus.EXPIRED
    assert expired_balances == (10_000, 0)
    assert (clearing.from_hold_minor, clearing.excess_minor) == (0, 2_000)
    assert balances(funded_wallet) == (8_000, 0)
    assert_ledger_consistent()


def test_given_expired_hold_when_expired_again_then_first_release_replayed(funded_wallet):
    placed = hold(funded_wallet, 2_000, "jit:old")
    first = expire_hold(hold=placed)
    assert expire_hold(hold=placed).pk == first.pk  # same key: a replay, not a second release


def test_given_no_authorization_when_force_post_then_charged_and_may_go_negative(funded_wallet):
    # when
    clearing = force_post(wallet=funded_wallet, amount_minor=12_000, clearing_key="txn-d-force")
    # then
    assert clearing.hold is None
    assert balances(funded_wallet) == (-2_000, 0)
    assert NegativeBalance.objects.filter(account=funded_wallet.available).exists()
    assert_ledger_consistent()


def test_given_force_post_when_replayed_then_charged_once(funded_wallet):
    force_post(wallet=funded_wallet, amount_minor=1_200, clearing_key="f")
    force_post(wallet=funded_wallet, amount_minor=1_200, clearing_key="f")
    assert balances(funded_wallet) == (8_800, 0)


def test_given_purchase_when_refunded_then_available_grows(funded_wallet):
    refund(wallet=funded_wallet, amount_minor=700, refund_key="txn-refund")
    refund(wallet=funded_wallet, amount_minor=700, refund_key="txn-refund")
    assert balances(funded_wallet) == (10_700, 0)
    assert_ledger_consistent()


def test_given_posting_when_reversed_then_negated_entries_and_only_once(funded_wallet):
    original = deposit(wallet=funded_wallet, amount_minor=500, idempotency_key="oops", actor="t")
    # when
    correction = reverse_transaction(original=original, actor="ops:test")
    again = reverse_transaction(original=original, actor="ops:test")
    # then
    assert again.pk == correction.pk
    assert LedgerEntry.objects.filter(transaction=original).count() == 2  # original stays
    assert balances(funded_wallet) == (10_000, 0)
    assert_ledger_consistent()


def test_given_hold_of_another_wallet_when_incremental_then_refused(funded_wallet, db):
    from cards.selectors import funding_account_for
    from ledger.errors import HoldOfAnotherWallet
    from tests.cards.factories import CardFactory

    other = funding_account_for(cardholder=CardFactory().cardholder).wallet
    deposit(wallet=other, amount_minor=5_000, idempotency_key="other", actor="t")
    original = hold(other, 1_000, "jit:other")
    with pytest.raises(HoldOfAnotherWallet):
        hold(funded_wallet, 500, "jit:cross", original=original)
    assert balances(funded_wallet) == (10_000, 0)
