"""`LedgerBatch` posts exactly what the per-posting services post, in the same order.

Two identical worlds (a program, two cardholders with deposits and open holds, incrementals
included). The same random sequence of holds (within the balance, refused, or overdrawing as
the ledger writer's approvals may), clearings (partial, exact, over, final or not, twice on
one chain, on closed holds), force posts and refunds runs through the services one by one in
world A and through one `LedgerBatch` in world B; then every balance, hold, clearing, entry,
negative-balance episode and cache push must correspond.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards.selectors import funding_account_for
from config.errors import DomainError
from ledger import services
from ledger.batch import LedgerBatch
from ledger.errors import IdempotencyConflict
from ledger.models import Account, Clearing, Hold, LedgerTransaction, NegativeBalance, Wallet
from ledger.signals import available_changed
from tests.cards.factories import CardholderFactory, ProgramFactory
from tests.ledger.helpers import assert_ledger_consistent, hold

amounts = st.integers(min_value=1, max_value=4_000)
EXPIRES = datetime(2031, 1, 1, tzinfo=UTC)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("clear"), st.integers(0, 4), amounts, st.booleans()),
        st.tuples(st.just("force_post"), st.integers(0, 1), amounts),
        st.tuples(st.just("refund"), st.integers(0, 1), amounts),
        st.tuples(st.just("hold"), st.integers(0, 1), amounts, st.booleans()),
    ),
    min_size=1,
    max_size=30,
)


class World:
    """A program with two funded cardholders and five hold chains (one with an incremental)."""

    def __init__(self) -> None:
        program = ProgramFactory()
        name = self.name = program.name
        self.wallets = [
            funding_account_for(cardholder=CardholderFactory(program=program)).wallet
            for _ in range(2)
        ]
        for index, wallet in enumerate(self.wallets):
            services.deposit(
                wallet=wallet, amount_minor=6_000, idempotency_key=f"{name}-{index}", actor="t"
            )
        self.holds: list[Hold] = []
        for index, amount in enumerate([1_000, 2_500, 400, 3_000, 1_500]):
            self.holds.append(hold(self.wallets[index % 2], amount, f"{name}-auth-{index}"))
        hold(self.wallets[0], 700, f"{name}-auth-0-inc", original=self.holds[0])
        self.book = self.wallets[0].book

    def accounts(self) -> list[int]:
        ids = [pk for wallet in self.wallets for pk in (wallet.available_id, wallet.held_id)]
        return [*ids, self.book.settlement_payable_id]


def run_one_by_one(world: World, sequence: list[tuple]) -> list[bool]:
    """The reference: each step through the services in its own savepoint."""
    refused = []
    for n, step in enumerate(sequence):
        try:
            with transaction.atomic():
                _service_step(world, step, key=f"{world.name}-step-{n}")
            refused.append(False)
        except DomainError:
            refused.append(True)
    return refused


def _service_step(world: World, step: tuple, *, key: str) -> None:
    kind, index, amount, *rest = step
    if kind == "clear":
        services.clear_hold(
            hold=world.holds[index], amount_minor=amount, clearing_key=key, is_final=rest[0]
        )
    elif kind == "force_post":
        services.force_post(wallet=world.wallets[index], amount_minor=amount, clearing_key=key)
    elif kind == "hold":
        services.place_hold(
            wallet=world.wallets[index],
            amount_minor=amount,
            authorization_key=key,
            expires_at=EXPIRES,
            allow_overdraw=rest[0],
        )
    else:
        services.refund(wallet=world.wallets[index], amount_minor=amount, refund_key=key)


def run_batched(world: World, sequence: list[tuple]) -> tuple[list[bool], LedgerBatch]:
    refused = []
    with transaction.atomic():
        batch = LedgerBatch()
        batch.lock(root_ids=[held.pk for held in world.holds], wallets=world.wallets)
        for n, step in enumerate(sequence):
            try:
                _batch_step(batch, world, step, key=f"{world.name}-step-{n}")
                refused.append(False)
            except DomainError:
                refused.append(True)
        batch.flush()
    return refused, batch


def _batch_step(batch: LedgerBatch, world: World, step: tuple, *, key: str) -> None:
    kind, index, amount, *rest = step
    if kind == "clear":
        held = world.holds[index]
        batch.clear_hold(
            root_id=held.pk,
            wallet=world.wallets[index % 2],
            amount_minor=amount,
            clearing_key=key,
            is_final=rest[0],
        )
    elif kind == "force_post":
        batch.force_post(wallet=world.wallets[index], amount_minor=amount, clearing_key=key)
    elif kind == "hold":
        batch.place_hold(
            wallet=world.wallets[index],
            amount_minor=amount,
            authorization_key=key,
            expires_at=EXPIRES,
            allow_overdraw=rest[0],
        )
    else:
        batch.refund(wallet=world.wallets[index], amount_minor=amount, refund_key=key)


def state_of(world: World) -> dict:
    """Everything a posting changes, with ids replaced by positions in the world."""
    position = {pk: n for n, pk in enumerate(world.accounts())}
    chain_ids = sorted(Hold.objects.filter(wallet__in=world.wallets).values_list("pk", flat=True))
    hold_position = {pk: n for n, pk in enumerate(chain_ids)}
    balances = dict(Account.objects.filter(pk__in=position).values_list("pk", "balance_minor"))
    negative_since = dict(
        Account.objects.filter(pk__in=position).values_list("pk", "negative_since")
    )
    postings = LedgerTransaction.objects.filter(
        entries__account_id__in=position, idempotency_key__contains="-step-"
    ).distinct()
    return {
        "balances": [balances[pk] for pk in position],
        "negative": [negative_since[pk] is not None for pk in position],
        "holds": [
            (
                hold_position[pk],
                key.partition("-step-")[2],
                amount,
                remaining,
                status,
                closed is not None,
            )
            for pk, key, amount, remaining, status, closed in Hold.objects.filter(pk__in=chain_ids)
            .order_by("pk")
            .values_list(
                "pk", "authorization_key", "amount_minor", "remaining_minor", "status", "closed_at"
            )
        ],
        "clearings": sorted(
            (
                key.split("-step-")[1],
                hold_position.get(hold_id),
                amount,
                from_hold,
                excess,
                released,
                is_final,
                str(posted_by__kind),
            )
            for key, hold_id, amount, from_hold, excess, released, is_final, posted_by__kind in (
                Clearing.objects.filter(wallet__in=world.wallets).values_list(
                    "clearing_key",
                    "hold_id",
                    "amount_minor",
                    "from_hold_minor",
                    "excess_minor",
                    "released_minor",
                    "is_final",
                    "posted_by__kind",
                )
            )
        ),
        "entries": sorted(
            (
                posting.idempotency_key.split("-step-")[1],
                posting.kind,
                posting.memo.split(" of ")[0],
            )
            + tuple(
                sorted(
                    (position[entry.account_id], entry.amount_minor)
                    for entry in posting.entries.all()
                )
            )
            for posting in postings.prefetch_related("entries")
        ),
        "episodes": sorted(
            (position[account_id], balance, resolved is not None)
            for account_id, balance, resolved in NegativeBalance.objects.filter(
                account_id__in=position
            ).values_list("account_id", "balance_minor", "resolved_at")
        ),
    }


def capture_pushes() -> tuple[list, Callable[[], None]]:
    pushed: list = []

    def receiver(sender: type, changes: list, **_: object) -> None:
        pushed.extend(changes)

    available_changed.connect(receiver, dispatch_uid="test-batch-capture")
    return pushed, lambda: available_changed.disconnect(dispatch_uid="test-batch-capture")


@settings(
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=steps)
def test_given_any_batch_when_posted_set_based_then_same_ledger_as_one_by_one(db, sequence):
    world_a, world_b = World(), World()
    pushed, stop = capture_pushes()
    try:
        refused_a = run_one_by_one(world_a, sequence)
        pushes_a = list(pushed)
        pushed.clear()
        refused_b, _ = run_batched(world_b, sequence)
    finally:
        stop()
    assert refused_b == refused_a
    assert state_of(world_b) == state_of(world_a)
    position_a = {pk: n for n, pk in enumerate(world_a.accounts())}
    position_b = {pk: n for n, pk in enumerate(world_b.accounts())}
    assert [
        (
            change.ledger_key.split("-step-")[1],
            {position_b[pk]: delta for pk, delta in change.deltas.items()},
        )
        for change in pushed
    ] == [
        (
            change.ledger_key.split("-step-")[1],
            {position_a[pk]: delta for pk, delta in change.deltas.items()},
        )
        for change in pushes_a
    ]
    assert_ledger_consistent()


def test_given_overdrawn_batch_when_flushed_then_each_posting_knows_its_negative_episode(db):
    world = World()
    wallet = world.wallets[0]
    with transaction.atomic():
        batch = LedgerBatch()
        first = batch.force_post(wallet=wallet, amount_minor=2_000, clearing_key="neg-1")
        second = batch.force_post(wallet=wallet, amount_minor=600, clearing_key="neg-2")
        back = batch.refund(wallet=wallet, amount_minor=800, refund_key="neg-3")
        batch.flush()
    # 6,000 deposited, 3,600 held (three chains and an incremental): 2,400 available; the
    # second force post crosses zero and opens the episode, the refund closes it
    episode = NegativeBalance.objects.get(account_id=wallet.available_id)
    assert first.negative_episode is None
    assert second.negative_episode == (episode.pk, second.transaction_id)
    assert episode.balance_minor == -200
    assert back.negative_episode is None
    assert episode.resolved_at is not None


def test_given_key_twice_in_one_batch_then_refused_and_the_batch_is_unchanged(db):
    world = World()
    with transaction.atomic():
        batch = LedgerBatch()
        batch.force_post(wallet=world.wallets[0], amount_minor=100, clearing_key="dup")
        with pytest.raises(IdempotencyConflict):
            batch.force_post(wallet=world.wallets[0], amount_minor=100, clearing_key="dup")
        assert batch.available_minor(world.wallets[0]) == 2_400 - 100
        batch.flush()
    assert Clearing.objects.filter(clearing_key="dup").count() == 1


def test_given_key_posted_since_the_batch_looked_when_flushed_then_database_refuses(db):
    world = World()
    wallet: Wallet = world.wallets[1]
    services.force_post(wallet=wallet, amount_minor=100, clearing_key="raced")
    before = Account.objects.get(pk=wallet.available_id).balance_minor
    with pytest.raises(IntegrityError), transaction.atomic():  # noqa: PT012 - one batch
        batch = LedgerBatch()
        batch.force_post(wallet=wallet, amount_minor=100, clearing_key="raced")
        batch.flush()
    assert Account.objects.get(pk=wallet.available_id).balance_minor == before
    assert Clearing.objects.filter(clearing_key="raced").count() == 1
