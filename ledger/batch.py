"""Set-based postings: many holds, clearings, force posts and refunds in one go (the ledger
writer's authorizations, clearing files).

`place_hold`, `clear_hold`, `force_post` and `refund` post one at a time: lock, check, INSERT the
transaction, INSERT its entries, UPDATE each account, save the chain, INSERT the clearing,
about twenty statements a line, and the program's settlement account is locked and updated
once per line. A `LedgerBatch` does the same arithmetic (the same `plan_*` functions of
`ledger.services`) for a whole batch, in memory over rows it locked once, then writes it:

    lock    the batch's hold chains, then its accounts (each set in pk order, one statement)
    plan    clear_hold / force_post / refund in order, each against the state the previous
            one left; a refused posting (a domain error) changes nothing in the batch
    flush   ids from the sequences, COPY of the transactions, entries, holds and clearings, one
            UPDATE for the holds and one for the accounts, the negative-balance episodes
            (rare, row by row, in order), one `available_changed` signal for the batch

The result is what calling the services one by one in the same order posts
(tests/ledger/test_batch.py checks it on random batches). Idempotency stays with the database:
a clearing or refund key posted since the caller looked breaks the unique index, the
transaction rolls back and the caller retries (and then sees the replay); so does an
authorization key held since (`place_hold` does not look for one). A key repeated
inside one batch is refused (`IdempotencyConflict`) before it moves anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from config.copy import copy_rows
from ledger.errors import IdempotencyConflict
from ledger.locks import lock_accounts, lock_hold_chains
from ledger.models import (
    Account,
    Clearing,
    Hold,
    HoldStatus,
    LedgerEntry,
    LedgerTransaction,
    NegativeBalance,
    Wallet,
)
from ledger.services import (
    MARQETA,
    ClearingPlan,
    Merchant,
    PostingPlan,
    _ensure_currencies,
    _natural_deltas,
    _open_remaining,
    crosses_zero,
    ensure_balanced,
    ensure_floors,
    plan_clearing,
    plan_hold,
    plan_refund,
    settle_chain,
)
from ledger.signals import AvailableChange, available_changed


@dataclass(slots=True)
class Planned:
    """A posting of the batch. Its ids (and its negative episode) are known after `flush`."""

    plan: PostingPlan
    actor: str
    deltas: dict[int, int]  # natural deltas by account id
    clearing: ClearingPlan | None = None
    hold: Hold | None = None  # a hold this posting places (its pk is set by `flush`)
    available_after: dict[int, int] = field(default_factory=dict)  # available account -> after
    transaction_id: int | None = None
    clearing_id: int | None = None
    negative_episode: tuple[int, int] | None = None  # (pk, opened_by id) if available < 0 after

    @property
    def excess_minor(self) -> int:
        return self.clearing.excess_minor if self.clearing else 0


@dataclass(slots=True)
class _Crossing:
    """An available balance crossed zero at this posting (opens or closes an episode)."""

    account_id: int
    planned: Planned
    after: int


class LedgerBatch:
    """One database transaction's worth of postings, planned in memory, written at `flush`.

    Use it inside `transaction.atomic()`; the locks it takes last until that commits.
    """

    def __init__(self) -> None:
        self.now: datetime = timezone.now()
        self.chains: dict[int, list[Hold]] = {}  # root id -> locked chain, oldest first
        self.accounts: dict[int, Account] = {}
        self.postings: list[Planned] = []
        self._keys: set[str] = set()
        self._touched_holds: dict[int, Hold] = {}
        self._crossings: list[_Crossing] = []
        self._moved_accounts: set[int] = set()

    # --- locks ---

    def lock(
        self,
        *,
        root_ids: Iterable[int] = (),
        wallets: Iterable[Wallet] = (),
        settlement: bool = True,
    ) -> None:
        """Lock what is not locked yet: hold chains first, then accounts (as the services do).

        `settlement=False` leaves the programs' settlement accounts alone: placing holds never
        moves them, and every ledger writer would otherwise queue on them.

        Lock everything the batch will touch up front, in one call: locking more later is
        allowed, but it takes locks out of pk order (a deadlock is then possible, and the
        caller's retry is what resolves it).
        """
        if new_roots := {pk for pk in root_ids if pk not in self.chains}:
            self.chains.update(lock_hold_chains(root_ids=new_roots))
        new_accounts = {
            pk
            for wallet in wallets
            for pk in (wallet.available_id, wallet.held_id)
            + ((wallet.book.settlement_payable_id,) if settlement else ())
            if pk not in self.accounts
        }
        if new_accounts:
            self.accounts.update(lock_accounts(ids=new_accounts))

    def root(self, root_id: int) -> Hold:
        """The locked root hold of a chain (locked now if it was not)."""
        self.lock(root_ids=[root_id])
        return self.chains[root_id][0]

    def available_minor(self, wallet: Wallet) -> int:
        """The wallet's available balance as this batch has left it so far."""
        self.lock(wallets=[wallet])
        return self.accounts[wallet.available_id].balance_minor

    def open_remaining_minor(self, root_id: int) -> int:
        """What a hold chain still holds, as this batch has left it so far."""
        self.lock(root_ids=[root_id])
        return _open_remaining(self.chains[root_id])

    # --- postings (the services' arithmetic) ---

    def place_hold(
        self,
        *,
        wallet: Wallet,
        amount_minor: int,
        authorization_key: str,
        expires_at: datetime,
        merchant: Merchant = Merchant(),  # noqa: B008 - frozen, so a shared default is safe
        transaction_token: str = "",
        jit_funding_token: str = "",
        is_standin: bool = False,
        allow_overdraw: bool = False,
        actor: str = MARQETA,
    ) -> Planned:
        """`ledger.services.place_hold` of a first authorization (no `original`), planned."""
        self.lock(wallets=[wallet], settlement=False)
        plan = plan_hold(
            wallet=wallet,
            amount_minor=amount_minor,
            authorization_key=authorization_key,
            expires_at=expires_at,
            merchant=merchant,
            transaction_token=transaction_token,
            jit_funding_token=jit_funding_token,
            is_standin=is_standin,
        )
        planned = self._post(plan.posting, actor=actor, allow_overdraw=allow_overdraw or is_standin)
        planned.hold = plan.hold
        return planned

    def clear_hold(
        self,
        *,
        root_id: int,
        wallet: Wallet,
        amount_minor: int,
        clearing_key: str,
        is_final: bool = True,
        merchant: Merchant = Merchant(),  # noqa: B008 - frozen, so a shared default is safe
        actor: str = MARQETA,
    ) -> Planned:
        """`ledger.services.clear_hold`, planned: the chain's root is `root_id`."""
        self.lock(root_ids=[root_id], wallets=[wallet])
        chain = self.chains[root_id]
        saved = [(hold.remaining_minor, hold.status, hold.closed_at) for hold in chain]
        try:
            plan = plan_clearing(
                chain=chain,
                wallet=wallet,
                amount_minor=amount_minor,
                clearing_key=clearing_key,
                is_final=is_final,
                merchant=merchant,
            )
            planned = self._post(plan.posting, actor=actor, allow_overdraw=True, clearing=plan)
        except Exception:
            for hold, (remaining, status, closed_at) in zip(chain, saved, strict=True):
                hold.remaining_minor, hold.status, hold.closed_at = remaining, status, closed_at
            raise
        settle_chain(chain, close_as=HoldStatus.CLOSED if is_final else None, now=self.now)
        self._touched_holds.update((hold.pk, hold) for hold in chain)
        return planned

    def force_post(
        self,
        *,
        wallet: Wallet,
        amount_minor: int,
        clearing_key: str,
        merchant: Merchant = Merchant(),  # noqa: B008 - frozen, so a shared default is safe
        actor: str = MARQETA,
    ) -> Planned:
        """`ledger.services.force_post`, planned."""
        self.lock(wallets=[wallet])
        plan = plan_clearing(
            chain=None,
            wallet=wallet,
            amount_minor=amount_minor,
            clearing_key=clearing_key,
            is_final=True,
            merchant=merchant,
        )
        return self._post(plan.posting, actor=actor, allow_overdraw=True, clearing=plan)

    def refund(
        self,
        *,
        wallet: Wallet,
        amount_minor: int,
        refund_key: str,
        actor: str = MARQETA,
        memo: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> Planned:
        """`ledger.services.refund`, planned."""
        self.lock(wallets=[wallet])
        plan = plan_refund(
            wallet=wallet,
            amount_minor=amount_minor,
            refund_key=refund_key,
            memo=memo,
            metadata=metadata,
        )
        return self._post(plan, actor=actor, allow_overdraw=False)

    def _post(
        self,
        plan: PostingPlan,
        *,
        actor: str,
        allow_overdraw: bool,
        clearing: ClearingPlan | None = None,
    ) -> Planned:
        """`post_transaction`'s checks, then its balance moves, in memory."""
        ensure_balanced(plan.lines)
        _ensure_currencies(plan.lines, self.accounts)
        if plan.idempotency_key in self._keys:
            raise IdempotencyConflict(
                f"{plan.idempotency_key} is twice in one batch",
                idempotency_key=plan.idempotency_key,
            )
        deltas = _natural_deltas(self.accounts, plan.lines)
        ensure_floors(self.accounts, deltas, allow_overdraw=allow_overdraw)
        planned = Planned(plan=plan, actor=actor, deltas=deltas, clearing=clearing)
        for account_id, delta in sorted(deltas.items()):
            if delta:
                self._move(self.accounts[account_id], delta, planned)
        self._keys.add(plan.idempotency_key)
        self.postings.append(planned)
        return planned

    def _move(self, account: Account, delta: int, planned: Planned) -> None:
        before, after = account.balance_minor, account.balance_minor + delta
        account.balance_minor = after
        self._moved_accounts.add(account.pk)
        if account.kind == Account.Kind.AVAILABLE:
            planned.available_after[account.pk] = after
        if crosses_zero(account, before=before, after=after):
            account.negative_since = self.now if after < 0 else None
            self._crossings.append(_Crossing(account.pk, planned, after))

    # --- writing ---

    def flush(self) -> None:
        """Write every planned posting; then the batch is empty (its locks stay)."""
        if not self.postings:
            return
        with connection.cursor() as cursor:
            self._assign_ids(cursor)
            self._copy_transactions()
            self._copy_entries()
            self._copy_holds()
            self._copy_clearings()
            self._update_holds(cursor)
            self._update_accounts(cursor)
        self._record_episodes()
        changes = [
            AvailableChange(
                ledger_key=planned.plan.idempotency_key,
                actor=planned.actor,
                deltas={pk: planned.deltas[pk] for pk in planned.available_after},
            )
            for planned in self.postings
            if planned.available_after
        ]
        if changes:
            available_changed.send(sender=LedgerTransaction, changes=changes)
        self.postings, self._touched_holds, self._crossings = [], {}, []
        self._moved_accounts = set()

    @staticmethod
    def _reserve_ids(cursor: CursorWrapper, table: str, count: int) -> list[int]:
        if not count:
            return []
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, count],
        )
        return [row[0] for row in cursor.fetchall()]

    def _assign_ids(self, cursor: CursorWrapper) -> None:
        transaction_ids = self._reserve_ids(
            cursor, LedgerTransaction._meta.db_table, len(self.postings)
        )
        for planned, pk in zip(self.postings, transaction_ids, strict=True):
            planned.transaction_id = pk
        placing = [planned for planned in self.postings if planned.hold]
        hold_ids = self._reserve_ids(cursor, Hold._meta.db_table, len(placing))
        for planned, pk in zip(placing, hold_ids, strict=True):
            planned.hold.pk, planned.hold.placed_by_id = pk, planned.transaction_id
            planned.hold.created_at = self.now
        clearings = [planned for planned in self.postings if planned.clearing]
        clearing_ids = self._reserve_ids(cursor, Clearing._meta.db_table, len(clearings))
        for planned, pk in zip(clearings, clearing_ids, strict=True):
            planned.clearing_id = pk

    def _copy_transactions(self) -> None:
        columns = ("id", "kind", "idempotency_key", "actor", "memo", "metadata", "created_at")
        rows = (
            (
                planned.transaction_id,
                str(planned.plan.kind),
                planned.plan.idempotency_key,
                planned.actor,
                planned.plan.memo[:255],
                json.dumps(planned.plan.metadata or {}),
                self.now,
            )
            for planned in self.postings
        )
        copy_rows(table=LedgerTransaction._meta.db_table, columns=columns, rows=rows)

    def _copy_entries(self) -> None:
        columns = ("transaction_id", "account_id", "amount_minor", "currency_code")
        rows = (
            (planned.transaction_id, line.account.pk, line.amount_minor, line.account.currency_code)
            for planned in self.postings
            for line in planned.plan.lines
        )
        copy_rows(table=LedgerEntry._meta.db_table, columns=columns, rows=rows)

    def _copy_holds(self) -> None:
        columns = (
            "id",
            "wallet_id",
            "authorization_key",
            "amount_minor",
            "remaining_minor",
            "currency_code",
            "status",
            "expires_at",
            "card_token",
            "transaction_token",
            "jit_funding_token",
            "mcc",
            "merchant_name",
            "is_standin",
            "placed_by_id",
            "created_at",
        )
        holds = (planned.hold for planned in self.postings if planned.hold)
        rows = (tuple(getattr(hold, column) for column in columns) for hold in holds)
        copy_rows(table=Hold._meta.db_table, columns=columns, rows=rows)
        for hold in (planned.hold for planned in self.postings if planned.hold):
            hold._state.adding = False  # a saved row from now on

    def _copy_clearings(self) -> None:
        columns = (
            "id",
            "wallet_id",
            "hold_id",
            "clearing_key",
            "amount_minor",
            "from_hold_minor",
            "excess_minor",
            "released_minor",
            "currency_code",
            "is_final",
            "card_token",
            "mcc",
            "merchant_name",
            "posted_by_id",
            "created_at",
        )
        rows = (
            (planned.clearing_id, *_clearing_values(planned.clearing), planned.transaction_id)
            + (self.now,)
            for planned in self.postings
            if planned.clearing
        )
        copy_rows(table=Clearing._meta.db_table, columns=columns, rows=rows)

    def _update_holds(self, cursor: CursorWrapper) -> None:
        holds = list(self._touched_holds.values())
        if not holds:
            return
        cursor.execute(
            f"UPDATE {Hold._meta.db_table} AS h"  # noqa: S608 - table name from the model
            " SET remaining_minor = v.remaining, status = v.status, closed_at = v.closed_at"
            " FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[])"
            " AS v(id, remaining, status, closed_at) WHERE h.id = v.id",
            [
                [hold.pk for hold in holds],
                [hold.remaining_minor for hold in holds],
                [str(hold.status) for hold in holds],
                [hold.closed_at for hold in holds],
            ],
        )

    def _update_accounts(self, cursor: CursorWrapper) -> None:
        accounts = [self.accounts[pk] for pk in sorted(self._moved_accounts)]
        cursor.execute(
            f"UPDATE {Account._meta.db_table} AS a"  # noqa: S608 - table name from the model
            " SET balance_minor = v.balance, negative_since = v.negative_since"
            " FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[])"
            " AS v(id, balance, negative_since) WHERE a.id = v.id",
            [
                [account.pk for account in accounts],
                [account.balance_minor for account in accounts],
                [account.negative_since for account in accounts],
            ],
        )

    def _record_episodes(self) -> None:
        """NegativeBalance rows as `post_transaction` makes them, and each posting's episode."""
        negative = {
            pk
            for planned in self.postings
            for pk, after in planned.available_after.items()
            if after < 0
        }
        if not negative and not self._crossings:
            return
        open_episode: dict[int, tuple[int, int] | None] = {
            account_id: (pk, opened_by_id)
            for account_id, pk, opened_by_id in NegativeBalance.objects.filter(
                account_id__in=negative, resolved_at__isnull=True
            ).values_list("account_id", "pk", "opened_by_id")
        }
        crossings: dict[int, list[_Crossing]] = {}
        for crossing in self._crossings:
            crossings.setdefault(id(crossing.planned), []).append(crossing)
        for planned in self.postings:
            for crossing in crossings.get(id(planned), ()):
                open_episode[crossing.account_id] = self._cross(crossing)
            for pk, after in planned.available_after.items():
                if after < 0:
                    planned.negative_episode = open_episode.get(pk)

    def _cross(self, crossing: _Crossing) -> tuple[int, int] | None:
        if crossing.after < 0:
            opened_by_id = crossing.planned.transaction_id
            episode = NegativeBalance.objects.create(
                account_id=crossing.account_id,
                opened_by_id=opened_by_id,
                balance_minor=crossing.after,
            )
            return episode.pk, opened_by_id
        NegativeBalance.objects.filter(
            account_id=crossing.account_id, resolved_at__isnull=True
        ).update(resolved_at=self.now)
        return None


def _clearing_values(plan: ClearingPlan | None) -> tuple:
    """A planned `Clearing` row's columns from `wallet_id` to `merchant_name`."""
    fields = plan.fields
    hold = fields["hold"]
    return (
        fields["wallet"].pk,
        hold.pk if hold is not None else None,
        fields["clearing_key"],
        fields["amount_minor"],
        fields["from_hold_minor"],
        fields["excess_minor"],
        fields["released_minor"],
        fields["currency_code"],
        fields["is_final"],
        fields["card_token"],
        fields["mcc"],
        fields["merchant_name"],
    )
