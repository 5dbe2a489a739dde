"""The only writers of ledger state. `post_transaction` is the only writer of entries.

Every service is idempotent on an external key: called twice with the same key and the same
arguments it returns the first result and moves nothing; with other arguments it raises
`IdempotencyConflict`. Locks are taken first (hold chain, then accounts, each in pk order) and
the idempotency check comes after them, so two concurrent calls with one key queue and the
second one replays.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ledger.audit import audited
from ledger.errors import (
    AdjustmentNotPending,
    CurrencyMismatch,
    HoldNotOpen,
    HoldOfAnotherWallet,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    ReasonRequired,
    SelfApprovalRefused,
    UnbalancedTransaction,
)
from ledger.locks import lock_accounts, lock_hold_chain
from ledger.models import (
    Account,
    Book,
    Clearing,
    Hold,
    HoldRelease,
    HoldStatus,
    Kind,
    LedgerEntry,
    LedgerTransaction,
    ManualAdjustment,
    NegativeBalance,
    Wallet,
)
from ledger.money import currency_exponent
from ledger.signals import AvailableChange, available_changed, wallet_opened

SYSTEM = "system"
MARQETA = "marqeta"


@dataclass(frozen=True, slots=True)
class Line:
    """One signed line of a posting: positive debits the account, negative credits it."""

    account: Account
    amount_minor: int

    def entry(self, posted: LedgerTransaction) -> LedgerEntry:
        return LedgerEntry(
            transaction=posted,
            account_id=self.account.pk,
            amount_minor=self.amount_minor,
            currency_code=self.account.currency_code,
        )


@dataclass(frozen=True, slots=True)
class PostingPlan:
    """A posting worked out but not written: `post_transaction`, or a `LedgerBatch`, writes it."""

    kind: Kind
    idempotency_key: str
    lines: list[Line]
    memo: str = ""
    metadata: dict[str, Any] | None = None


def debit(account: Account, amount_minor: int) -> Line:
    return Line(account, amount_minor)


def credit(account: Account, amount_minor: int) -> Line:
    return Line(account, -amount_minor)


def ensure_positive(amount_minor: int) -> None:
    """Amounts given to services are whole minor units above zero."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise InvalidAmount(f"{amount_minor!r} is not a positive whole number of minor units")


def ensure_balanced(lines: Sequence[Line]) -> None:
    """Signed lines sum to zero per currency; no line is zero."""
    if not lines:
        raise UnbalancedTransaction("a transaction needs at least two lines")
    totals: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.amount_minor == 0:
            raise UnbalancedTransaction(f"a zero line on {line.account.code}")
        totals[line.account.currency_code] += line.amount_minor
    if unbalanced := {code: total for code, total in totals.items() if total}:
        raise UnbalancedTransaction(f"lines do not sum to zero: {unbalanced}", totals=unbalanced)


def _signature(pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted(pairs)


def ensure_same_lines(replay: LedgerTransaction, lines: Sequence[Line]) -> LedgerTransaction:
    """A replayed key returns the original posting, but only for the same lines."""
    posted = replay.entries.values_list("account_id", "amount_minor")
    asked = [(line.account.pk, line.amount_minor) for line in lines]
    if _signature(list(posted)) != _signature(asked):
        raise IdempotencyConflict(
            f"{replay.idempotency_key} was already used for a different posting",
            idempotency_key=replay.idempotency_key,
        )
    return replay


def _natural_deltas(accounts: dict[int, Account], lines: Sequence[Line]) -> dict[int, int]:
    deltas: dict[int, int] = defaultdict(int)
    for line in lines:
        deltas[line.account.pk] += accounts[line.account.pk].natural_delta(line.amount_minor)
    return deltas


def ensure_floors(
    accounts: dict[int, Account], deltas: dict[int, int], *, allow_overdraw: bool
) -> None:
    """An available balance may not drop below zero unless this posting may overdraw."""
    for account_id, delta in deltas.items():
        account = accounts[account_id]
        after = account.balance_minor + delta
        if account.kind == Account.Kind.HELD and after < 0:
            raise UnbalancedTransaction(f"{account.code} would hold less than nothing")
        if (
            account.kind == Account.Kind.AVAILABLE
            and delta < 0
            and after < 0
            and not allow_overdraw
        ):
            raise InsufficientFunds(
                f"available {account.balance_minor} is less than {-delta} needed",
                available_minor=account.balance_minor,
                needed_minor=-delta,
            )


def _ensure_currencies(lines: Sequence[Line], accounts: dict[int, Account]) -> None:
    for line in lines:
        if accounts[line.account.pk].currency_code != line.account.currency_code:
            raise CurrencyMismatch(f"{line.account.code} is not in {line.account.currency_code}")


def _apply_balances(
    accounts: dict[int, Account], deltas: dict[int, int], posted: LedgerTransaction
) -> None:
    """Move running balances in this transaction; flag available balances that cross zero."""
    now = timezone.now()
    for account_id, delta in sorted(deltas.items()):
        if delta == 0:
            continue
        account = accounts[account_id]
        before, after = account.balance_minor, account.balance_minor + delta
        changes: dict[str, Any] = {"balance_minor": F("balance_minor") + delta}
        if crosses_zero(account, before=before, after=after):
            changes["negative_since"] = now if after < 0 else None
            _flag_negative_crossing(account, posted, after, now)
        Account.objects.filter(pk=account_id).update(**changes)
        account.balance_minor = after


def crosses_zero(account: Account, *, before: int, after: int) -> bool:
    """An available balance going below zero or back: a negative episode opens or closes."""
    return account.kind == Account.Kind.AVAILABLE and (before < 0) != (after < 0)


def _flag_negative_crossing(
    account: Account, posted: LedgerTransaction, after: int, now: datetime
) -> None:
    if after < 0:
        NegativeBalance.objects.create(account=account, opened_by=posted, balance_minor=after)
    else:
        NegativeBalance.objects.filter(account=account, resolved_at__isnull=True).update(
            resolved_at=now
        )


@transaction.atomic
def post_transaction(
    *,
    kind: Kind,
    idempotency_key: str,
    lines: Sequence[Line],
    actor: str,
    memo: str = "",
    metadata: dict[str, Any] | None = None,
    allow_overdraw: bool = False,
) -> LedgerTransaction:
    """The only writer of `LedgerEntry`; signed lines sum to zero per currency."""
    ensure_balanced(lines)
    accounts = lock_accounts(ids=[line.account.pk for line in lines])
    _ensure_currencies(lines, accounts)
    if replay := LedgerTransaction.objects.filter(idempotency_key=idempotency_key).first():
        return ensure_same_lines(replay, lines)
    deltas = _natural_deltas(accounts, lines)
    ensure_floors(accounts, deltas, allow_overdraw=allow_overdraw)
    posted = LedgerTransaction.objects.create(
        kind=kind,
        idempotency_key=idempotency_key,
        actor=actor,
        memo=memo[:255],
        metadata=metadata or {},
    )
    LedgerEntry.objects.bulk_create(line.entry(posted) for line in lines)
    _apply_balances(accounts, deltas, posted)
    if available := {
        pk: delta
        for pk, delta in deltas.items()
        if delta and accounts[pk].kind == Account.Kind.AVAILABLE
    }:
        change = AvailableChange(ledger_key=idempotency_key, actor=actor, deltas=available)
        available_changed.send(sender=LedgerTransaction, changes=[change])
    return posted


# --- books and wallets -------------------------------------------------------------------


def _open_account(*, code: str, kind: Account.Kind, currency_code: str) -> Account:
    account, _ = Account.objects.get_or_create(
        code=code, defaults={"kind": kind, "currency_code": currency_code}
    )
    return account


@transaction.atomic
def open_book(*, name: str, currency_code: str) -> Book:
    """A program's own accounts in one currency; opening it twice returns the first."""
    currency_exponent(currency_code)  # UnknownCurrency
    if book := Book.objects.filter(name=name, currency_code=currency_code).first():
        return book
    prefix = f"program:{name}:{currency_code}"
    return Book.objects.create(
        name=name,
        currency_code=currency_code,
        funding_bank=_open_account(
            code=f"{prefix}:funding_bank",
            kind=Account.Kind.FUNDING_BANK,
            currency_code=currency_code,
        ),
        settlement_payable=_open_account(
            code=f"{prefix}:settlement_payable",
            kind=Account.Kind.SETTLEMENT_PAYABLE,
            currency_code=currency_code,
        ),
        adjustments=_open_account(
            code=f"{prefix}:adjustments",
            kind=Account.Kind.ADJUSTMENTS,
            currency_code=currency_code,
        ),
    )


@transaction.atomic
def open_wallet(*, book: Book, holder_token: str) -> Wallet:
    """A cardholder's available and held accounts in the book's currency; idempotent."""
    currency = book.currency_code
    if wallet := Wallet.objects.filter(holder_token=holder_token, currency_code=currency).first():
        return wallet
    prefix = f"holder:{holder_token}:{currency}"
    wallet = Wallet.objects.create(
        book=book,
        holder_token=holder_token,
        currency_code=currency,
        available=_open_account(
            code=f"{prefix}:available", kind=Account.Kind.AVAILABLE, currency_code=currency
        ),
        held=_open_account(code=f"{prefix}:held", kind=Account.Kind.HELD, currency_code=currency),
    )
    wallet_opened.send(sender=Wallet, wallet=wallet)
    return wallet


# --- money in and out --------------------------------------------------------------------


def deposit(
    *, wallet: Wallet, amount_minor: int, idempotency_key: str, actor: str, memo: str = ""
) -> LedgerTransaction:
    """Money arrives at our bank for the cardholder: funding_bank -> available."""
    ensure_positive(amount_minor)
    return post_transaction(
        kind=Kind.DEPOSIT,
        idempotency_key=f"deposit:{idempotency_key}",
        lines=[
            debit(wallet.book.funding_bank, amount_minor),
            credit(wallet.available, amount_minor),
        ],
        actor=actor,
        memo=memo,
    )


def withdraw(
    *, wallet: Wallet, amount_minor: int, idempotency_key: str, actor: str, memo: str = ""
) -> LedgerTransaction:
    """Money leaves for the cardholder's bank: available -> funding_bank; never overdraws."""
    ensure_positive(amount_minor)
    return post_transaction(
        kind=Kind.WITHDRAWAL,
        idempotency_key=f"withdrawal:{idempotency_key}",
        lines=[
            debit(wallet.available, amount_minor),
            credit(wallet.book.funding_bank, amount_minor),
        ],
        actor=actor,
        memo=memo,
    )


def refund(
    *,
    wallet: Wallet,
    amount_minor: int,
    refund_key: str,
    actor: str = MARQETA,
    memo: str = "",
    metadata: dict[str, Any] | None = None,
) -> LedgerTransaction:
    """A merchant gives money back: settlement_payable -> available."""
    plan = plan_refund(
        wallet=wallet,
        amount_minor=amount_minor,
        refund_key=refund_key,
        memo=memo,
        metadata=metadata,
    )
    return post_plan(plan, actor=actor)


def plan_refund(
    *,
    wallet: Wallet,
    amount_minor: int,
    refund_key: str,
    memo: str = "",
    metadata: dict[str, Any] | None = None,
) -> PostingPlan:
    ensure_positive(amount_minor)
    return PostingPlan(
        kind=Kind.REFUND,
        idempotency_key=f"refund:{refund_key}",
        lines=[
            debit(wallet.book.settlement_payable, amount_minor),
            credit(wallet.available, amount_minor),
        ],
        memo=memo,
        metadata=metadata,
    )


def post_plan(plan: PostingPlan, *, actor: str, allow_overdraw: bool = False) -> LedgerTransaction:
    return post_transaction(
        kind=plan.kind,
        idempotency_key=plan.idempotency_key,
        lines=plan.lines,
        actor=actor,
        memo=plan.memo,
        metadata=plan.metadata,
        allow_overdraw=allow_overdraw,
    )


@transaction.atomic
def reverse_transaction(*, original: LedgerTransaction, actor: str) -> LedgerTransaction:
    """A correction: the negated lines under `reversal:<pk>`, so at most once per posting."""
    entries = list(original.entries.select_related("account"))
    return post_transaction(
        kind=Kind.REVERSAL,
        idempotency_key=f"reversal:{original.pk}",
        lines=[Line(entry.account, -entry.amount_minor) for entry in entries],
        actor=actor,
        memo=f"reverses #{original.pk}",
    )


# --- holds ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Merchant:
    """What we know of the card and merchant behind a hold or a clearing."""

    card_token: str = ""
    mcc: str = ""
    merchant_name: str = ""


def _lock_wallet(wallet: Wallet) -> None:
    lock_accounts(ids=[wallet.available_id, wallet.held_id])


def _ensure_same_hold(hold: Hold, *, wallet: Wallet, amount_minor: int) -> Hold:
    if hold.wallet_id != wallet.pk or hold.amount_minor != amount_minor:
        raise IdempotencyConflict(
            f"authorization {hold.authorization_key} was already held for another amount",
            authorization_key=hold.authorization_key,
        )
    return hold


@transaction.atomic
def place_hold(
    *,
    wallet: Wallet,
    amount_minor: int,
    authorization_key: str,
    expires_at: datetime,
    original: Hold | None = None,
    merchant: Merchant = Merchant(),  # noqa: B008 - frozen, so a shared default is safe
    transaction_token: str = "",
    jit_funding_token: str = "",
    is_standin: bool = False,
    allow_overdraw: bool = False,
    actor: str = MARQETA,
) -> Hold:
    """Authorization approved: available -> held. Nothing is charged.

    `original` links an incremental authorization to the first hold of its chain.
    `allow_overdraw` is for approvals already given (by our gateway or a stand-in): the money
    is promised, so the ledger records it and flags a negative balance instead of refusing.
    """
    plan = plan_hold(
        wallet=wallet,
        amount_minor=amount_minor,
        authorization_key=authorization_key,
        expires_at=expires_at,
        original=original,
        merchant=merchant,
        transaction_token=transaction_token,
        jit_funding_token=jit_funding_token,
        is_standin=is_standin,
    )
    _lock_wallet(wallet)
    if existing := Hold.objects.filter(authorization_key=authorization_key).first():
        return _ensure_same_hold(existing, wallet=wallet, amount_minor=amount_minor)
    plan.hold.placed_by = post_plan(
        plan.posting, actor=actor, allow_overdraw=allow_overdraw or is_standin
    )
    plan.hold.save()
    return plan.hold


@dataclass(frozen=True, slots=True)
class HoldPlan:
    """A hold worked out but not written: its posting, and the row (saved once posted)."""

    posting: PostingPlan
    hold: Hold


def plan_hold(
    *,
    wallet: Wallet,
    amount_minor: int,
    authorization_key: str,
    expires_at: datetime,
    original: Hold | None = None,
    merchant: Merchant = Merchant(),  # noqa: B008 - frozen, so a shared default is safe
    transaction_token: str = "",
    jit_funding_token: str = "",
    is_standin: bool = False,
) -> HoldPlan:
    ensure_positive(amount_minor)
    if original is not None and original.wallet_id != wallet.pk:
        raise HoldOfAnotherWallet(f"incremental {authorization_key} names another wallet's hold")
    posting = PostingPlan(
        kind=Kind.HOLD,
        idempotency_key=f"hold:{authorization_key}",
        lines=[debit(wallet.available, amount_minor), credit(wallet.held, amount_minor)],
        memo=f"{merchant.merchant_name} {merchant.mcc}".strip(),
    )
    hold = Hold(
        wallet=wallet,
        original=(original.original or original) if original else None,
        authorization_key=authorization_key,
        amount_minor=amount_minor,
        remaining_minor=amount_minor,
        currency_code=wallet.currency_code,
        expires_at=expires_at,
        card_token=merchant.card_token,
        mcc=merchant.mcc,
        merchant_name=merchant.merchant_name,
        transaction_token=transaction_token,
        jit_funding_token=jit_funding_token,
        is_standin=is_standin,
    )
    return HoldPlan(posting=posting, hold=hold)


def _take_from_chain(chain: Sequence[Hold], amount_minor: int, *, newest_first: bool) -> int:
    """Lower the chain's remaining amounts by up to `amount_minor`; returns what was taken."""
    taken = 0
    for hold in reversed(chain) if newest_first else chain:
        part = min(hold.remaining_minor, amount_minor - taken)
        hold.remaining_minor -= part
        taken += part
    return taken


def settle_chain(chain: Sequence[Hold], *, close_as: HoldStatus | None, now: datetime) -> None:
    """Close the chain's open holds (as `close_as`, or CLOSED once nothing remains); in memory."""
    for hold in chain:
        if close_as and hold.status == HoldStatus.OPEN:
            hold.remaining_minor, hold.status, hold.closed_at = 0, close_as, now
        elif hold.status == HoldStatus.OPEN and sum(h.remaining_minor for h in chain) == 0:
            hold.status, hold.closed_at = HoldStatus.CLOSED, now


def _save_chain(chain: Sequence[Hold], *, close_as: HoldStatus | None) -> None:
    settle_chain(chain, close_as=close_as, now=timezone.now())
    for hold in chain:
        hold.save(update_fields=["remaining_minor", "status", "closed_at"])


def _open_remaining(chain: Sequence[Hold]) -> int:
    return sum(hold.remaining_minor for hold in chain if hold.status == HoldStatus.OPEN)


@transaction.atomic
def release_hold(
    *,
    hold: Hold,
    release_key: str,
    amount_minor: int | None = None,
    reason: HoldRelease.Reason = HoldRelease.Reason.REVERSAL,
    actor: str = MARQETA,
) -> HoldRelease:
    """Reversal (full when `amount_minor` is None, else partial), expiry or ops: held -> available.

    A partial reversal releases the newest incremental first. Asking for more than is held
    releases what is held (the request is recorded). Nothing held: `HoldNotOpen`.
    """
    if amount_minor is not None:
        ensure_positive(amount_minor)
    chain = lock_hold_chain(hold=hold)
    wallet = chain[0].wallet
    _lock_wallet(wallet)
    if replay := HoldRelease.objects.filter(release_key=release_key).first():
        if replay.requested_minor != amount_minor or replay.hold_id != chain[0].pk:
            raise IdempotencyConflict(f"release {release_key} was already used differently")
        return replay
    open_minor = _open_remaining(chain)
    if open_minor == 0:
        raise HoldNotOpen(f"authorization {chain[0].authorization_key} holds nothing now")
    released = _take_from_chain(chain, amount_minor or open_minor, newest_first=True)
    posted = post_transaction(
        kind=Kind.HOLD_RELEASE,
        idempotency_key=f"release:{release_key}",
        lines=[debit(wallet.held, released), credit(wallet.available, released)],
        actor=actor,
        memo=f"{reason} of {chain[0].authorization_key}",
    )
    expired = reason == HoldRelease.Reason.EXPIRY
    _save_chain(chain, close_as=HoldStatus.EXPIRED if expired else None)
    return HoldRelease.objects.create(
        hold=chain[0],
        release_key=release_key,
        reason=reason,
        requested_minor=amount_minor,
        amount_minor=released,
        posted_by=posted,
    )


def expire_hold(*, hold: Hold, actor: str = SYSTEM) -> HoldRelease:
    """No clearing came in time: give the whole remaining hold back. A later clearing still
    charges (from available)."""
    root_key = (hold.original or hold).authorization_key
    return release_hold(
        hold=hold, release_key=f"expiry:{root_key}", reason=HoldRelease.Reason.EXPIRY, actor=actor
    )


def _ensure_same_clearing(clearing: Clearing, *, amount_minor: int, hold_id: int | None) -> None:
    if clearing.amount_minor != amount_minor or clearing.hold_id != hold_id:
        raise IdempotencyConflict(
            f"clearing {clearing.clearing_key} was already posted with other values",
            clearing_key=clearing.clearing_key,
        )


def _clearing_lines(wallet: Wallet, *, from_hold: int, excess: int, released: int) -> list[Line]:
    # the network has already paid the merchant, so the excess may overdraw available
    lines = [credit(wallet.book.settlement_payable, from_hold + excess)]
    if from_hold:
        lines.append(debit(wallet.held, from_hold))
    if excess:
        lines.append(debit(wallet.available, excess))
    if released:
        lines += [debit(wallet.held, released), credit(wallet.available, released)]
    return lines


@dataclass(frozen=True, slots=True)
class ClearingPlan:
    """A clearing worked out in memory: its posting and the columns of its `Clearing` row."""

    posting: PostingPlan
    fields: dict[str, Any]  # Clearing's columns but `posted_by`; `wallet` and `hold` as objects

    @property
    def excess_minor(self) -> int:
        return self.fields["excess_minor"]


def plan_clearing(
    *,
    chain: Sequence[Hold] | None,
    wallet: Wallet,
    amount_minor: int,
    clearing_key: str,
    is_final: bool,
    merchant: Merchant,
) -> ClearingPlan:
    """The arithmetic of a clearing, shared by `clear_hold`, `force_post` and `LedgerBatch`.

    With a (locked) hold chain it takes the amount from the chain in memory, oldest first, and
    a final clearing releases what is left; the caller then settles and saves the chain.
    Without one it is a force post: everything from available.
    """
    ensure_positive(amount_minor)
    if chain is None:
        from_hold = released = 0
        is_final, kind, memo = True, Kind.FORCE_POST, f"force post {merchant.merchant_name}"
    else:
        from_hold = _take_from_chain(
            chain, min(amount_minor, _open_remaining(chain)), newest_first=False
        )
        released = _open_remaining(chain) if is_final else 0
        kind, memo = Kind.CLEARING, f"clearing of {chain[0].authorization_key}"
    excess = amount_minor - from_hold
    posting = PostingPlan(
        kind=kind,
        idempotency_key=f"clearing:{clearing_key}",
        lines=_clearing_lines(wallet, from_hold=from_hold, excess=excess, released=released),
        memo=memo.strip(),
    )
    fields = {
        "wallet": wallet,
        "hold": chain[0] if chain else None,
        "clearing_key": clearing_key,
        "amount_minor": amount_minor,
        "from_hold_minor": from_hold,
        "excess_minor": excess,
        "released_minor": released,
        "currency_code": wallet.currency_code,
        "is_final": is_final,
        "card_token": merchant.card_token,
        "mcc": merchant.mcc,
        "merchant_name": merchant.merchant_name,
    }
    return ClearingPlan(posting=posting, fields=fields)


@transaction.atomic
def clear_hold(
    *,
    hold: Hold,
    amount_minor: int,
    clearing_key: str,
    is_final: bool = True,
    merchant: Merchant = Merchant(),  # noqa: B008 - frozen, so a shared default is safe
    actor: str = MARQETA,
) -> Clearing:
    """Charge a cleared authorization: held -> settlement_payable, any excess from available.

    Partial: charges part of the hold; the rest stays held until the final clearing, which
    releases it. Over-clearing (tips, fuel): the excess comes from available and may overdraw.
    An expired or closed hold: the whole amount comes from available (it is still charged).
    """
    ensure_positive(amount_minor)
    chain = lock_hold_chain(hold=hold)
    root, wallet = chain[0], chain[0].wallet
    _lock_wallet(wallet)
    if replay := Clearing.objects.filter(clearing_key=clearing_key).first():
        _ensure_same_clearing(replay, amount_minor=amount_minor, hold_id=root.pk)
        return replay
    plan = plan_clearing(
        chain=chain,
        wallet=wallet,
        amount_minor=amount_minor,
        clearing_key=clearing_key,
        is_final=is_final,
        merchant=merchant,
    )
    posted = post_plan(plan.posting, actor=actor, allow_overdraw=True)
    _save_chain(chain, close_as=HoldStatus.CLOSED if is_final else None)
    return Clearing.objects.create(**plan.fields, posted_by=posted)


@transaction.atomic
def force_post(
    *,
    wallet: Wallet,
    amount_minor: int,
    clearing_key: str,
    merchant: Merchant = Merchant(),  # noqa: B008 - frozen, so a shared default is safe
    actor: str = MARQETA,
) -> Clearing:
    """A clearing with no authorization: available -> settlement_payable; may overdraw."""
    ensure_positive(amount_minor)
    _lock_wallet(wallet)
    if replay := Clearing.objects.filter(clearing_key=clearing_key).first():
        _ensure_same_clearing(replay, amount_minor=amount_minor, hold_id=None)
        return replay
    plan = plan_clearing(
        chain=None,
        wallet=wallet,
        amount_minor=amount_minor,
        clearing_key=clearing_key,
        is_final=True,
        merchant=merchant,
    )
    posted = post_plan(plan.posting, actor=actor, allow_overdraw=True)
    return Clearing.objects.create(**plan.fields, posted_by=posted)


# --- manual adjustments (maker-checker) -----------------------------------------------------


@transaction.atomic
def propose_adjustment(
    *, wallet: Wallet, amount_minor: int, reason: str, proposer: AbstractBaseUser
) -> ManualAdjustment:
    """A person asks to move money: positive credits the cardholder, negative debits them."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor == 0:
        raise InvalidAmount("an adjustment moves a non-zero whole number of minor units")
    if not reason.strip():
        raise ReasonRequired("say why the adjustment is needed")
    adjustment = ManualAdjustment(
        wallet=wallet,
        amount_minor=amount_minor,
        currency_code=wallet.currency_code,
        reason=reason.strip(),
        proposed_by=proposer,
    )
    with audited(target=adjustment, actor=proposer, action="propose_adjustment", reason=reason):
        adjustment.save()
    return adjustment


def _adjustment_lines(adjustment: ManualAdjustment) -> list[Line]:
    wallet, amount = adjustment.wallet, adjustment.amount_minor
    if amount > 0:  # a credit to the cardholder is an expense of the program
        return [debit(wallet.book.adjustments, amount), credit(wallet.available, amount)]
    return [debit(wallet.available, -amount), credit(wallet.book.adjustments, -amount)]


def _lock_pending_adjustment(adjustment: ManualAdjustment) -> ManualAdjustment:
    adjustment = ManualAdjustment.objects.select_for_update().get(pk=adjustment.pk)
    if adjustment.status != ManualAdjustment.Status.PENDING:
        raise AdjustmentNotPending(f"adjustment {adjustment.pk} is already {adjustment.status}")
    return adjustment


@transaction.atomic
def approve_adjustment(
    *, adjustment: ManualAdjustment, approver: AbstractBaseUser
) -> ManualAdjustment:
    """The second person approves: the money moves exactly once."""
    adjustment = _lock_pending_adjustment(adjustment)
    if adjustment.proposed_by_id == approver.pk:
        raise SelfApprovalRefused("an adjustment needs a second person to approve it")
    with audited(
        target=adjustment, actor=approver, action="approve_adjustment", reason=adjustment.reason
    ):
        adjustment.transaction = post_transaction(
            kind=Kind.ADJUSTMENT,
            idempotency_key=f"adjustment:{adjustment.pk}",
            lines=_adjustment_lines(adjustment),
            actor=f"ops:{approver.get_username()}",
            memo=adjustment.reason,
        )
        adjustment.status, adjustment.decided_by = ManualAdjustment.Status.APPROVED, approver
        adjustment.decided_at = timezone.now()
        adjustment.save(update_fields=["transaction", "status", "decided_by", "decided_at"])
    return adjustment


@transaction.atomic
def reject_adjustment(
    *, adjustment: ManualAdjustment, decider: AbstractBaseUser, reason: str
) -> ManualAdjustment:
    """Anyone with the approve permission (the maker too, to withdraw it) may reject."""
    adjustment = _lock_pending_adjustment(adjustment)
    if not reason.strip():
        raise ReasonRequired("say why the adjustment is rejected")
    with audited(target=adjustment, actor=decider, action="reject_adjustment", reason=reason):
        adjustment.status, adjustment.decided_by = ManualAdjustment.Status.REJECTED, decider
        adjustment.decided_at = timezone.now()
        adjustment.save(update_fields=["status", "decided_by", "decided_at"])
    return adjustment
