"""Property test: any sequence of postings keeps the ledger balanced and matches a model."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards.selectors import funding_account_for
from config.errors import DomainError
from ledger import services
from ledger.models import Hold, Wallet
from tests.cards.factories import CardFactory
from tests.ledger.helpers import assert_ledger_consistent, balances, hold

amounts = st.integers(min_value=1, max_value=5_000)
hold_index = st.integers(min_value=0, max_value=7)
steps = st.one_of(
    st.tuples(st.just("deposit"), amounts),
    st.tuples(st.just("hold"), amounts),
    st.tuples(st.just("release"), hold_index, st.one_of(st.none(), amounts)),
    st.tuples(st.just("clear"), hold_index, amounts, st.booleans()),
    st.tuples(st.just("expire"), hold_index),
    st.tuples(st.just("force_post"), amounts),
    st.tuples(st.just("refund"), amounts),
)


@dataclass
class ModelHold:
    remaining: int
    is_open: bool = True
    expired: bool = False


@dataclass
class BalanceModel:
    """What the balances should be, computed without the ledger."""

    available: int = 0
    pending: int = 0
    holds: list[ModelHold] = field(default_factory=list)

    def take(self, held: ModelHold, amount: int) -> int:
        taken = min(amount, held.remaining if held.is_open else 0)
        held.remaining -= taken
        self.pending -= taken
        if held.remaining == 0:
            held.is_open = False
        return taken

    def apply(self, step: tuple, *, refused: bool) -> None:
        kind, *args = step
        if refused:
            return
        if kind == "deposit" or kind == "refund":
            self.available += args[0]
        elif kind == "force_post":
            self.available -= args[0]
        elif kind == "hold":
            self.available -= args[0]
            self.pending += args[0]
            self.holds.append(ModelHold(remaining=args[0]))
        elif kind == "release":
            held = self.holds[args[0]]
            self.available += self.take(held, args[1] or held.remaining)
        elif kind == "expire":
            held = self.holds[args[0]]
            if not held.expired:
                self.available += self.take(held, held.remaining)
                held.expired = True
        elif kind == "clear":
            self.clear(self.holds[args[0]], args[1], is_final=args[2])

    def clear(self, held: ModelHold, amount: int, *, is_final: bool) -> None:
        from_hold = self.take(held, amount)
        self.available -= amount - from_hold
        if is_final:
            self.available += self.take(held, held.remaining)
            held.is_open = False

    def expected_refusal(self, step: tuple) -> bool:
        kind, *args = step
        if kind == "hold":
            return args[0] > self.available
        if kind in ("release", "expire", "clear") and args[0] >= len(self.holds):
            return True
        if kind == "release":
            return self.holds[args[0]].remaining == 0
        if kind == "expire":
            held = self.holds[args[0]]
            return held.remaining == 0 and not held.expired
        return False


def apply_step(wallet: Wallet, placed: list[Hold], step: tuple, n: int) -> bool:
    """Run one step through the real services; returns True when it was refused."""
    kind, *args = step
    key = f"step-{wallet.pk}-{n}"
    try:
        if kind == "deposit":
            services.deposit(wallet=wallet, amount_minor=args[0], idempotency_key=key, actor="t")
        elif kind == "refund":
            services.refund(wallet=wallet, amount_minor=args[0], refund_key=key)
        elif kind == "force_post":
            services.force_post(wallet=wallet, amount_minor=args[0], clearing_key=key)
        elif kind == "hold":
            placed_hold = hold(wallet, args[0], key)
            if not placed or placed[-1].pk != placed_hold.pk:  # a replay returns the same hold
                placed.append(placed_hold)
        elif args[0] >= len(placed):
            return True  # no such hold yet: the model refuses it too
        elif kind == "release":
            services.release_hold(hold=placed[args[0]], release_key=key, amount_minor=args[1])
        elif kind == "expire":
            services.expire_hold(hold=placed[args[0]])
        elif kind == "clear":
            services.clear_hold(
                hold=placed[args[0]], amount_minor=args[1], clearing_key=key, is_final=args[2]
            )
    except DomainError:
        return True
    return False


@settings(
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(steps, max_size=25))
def test_any_sequence_of_postings_balances_and_matches_the_model(db, sequence):
    card, model, placed = CardFactory(), BalanceModel(), []
    wallet = funding_account_for(cardholder=card.cardholder).wallet
    for n, step in enumerate(sequence):
        expected_refusal = model.expected_refusal(step)
        refused = apply_step(wallet, placed, step, n)
        assert refused == expected_refusal, step
        if not refused:  # a retry of the same step is a replay: nothing moves again
            assert apply_step(wallet, placed, step, n) is False
        model.apply(step, refused=refused)
        assert balances(wallet) == (model.available, model.pending), step
    assert_ledger_consistent()
