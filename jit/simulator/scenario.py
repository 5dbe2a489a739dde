"""The seeded day: what the cards do (authorizations), then what Marqeta tells us (webhooks).

Everything random is drawn from `random.Random` seeded by `--seed`, so a seed replays the same
day. The authorizations are planned up front (`plan_day`); the webhooks are planned after them
(`plan_webhooks`), because they depend on the answers the gateway gave.

Webhooks go out in waves. A chain's follow-ups come one wave after another (auth outcome, then
a reversal, then its clearing …), and each wave is split into its credits and then its debits:
inside a half-wave the platform may apply events in any order (Celery runs them in parallel),
and no two events of one half can change each other's outcome. That keeps the expected end
state, and the number of negative-balance episodes, exact.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from jit.simulator import payloads
from jit.simulator.merchants import (
    ATM,
    CARD_PRESENT,
    ECOMMERCE,
    MERCHANTS,
    Merchant,
    pick_merchant,
    purchase_amount,
)
from jit.simulator.model import APPROVED, AuthMessage, Chain, Event
from jit.simulator.payloads import Facts, MarqetaOutcome, Message, SimCard


@dataclass(frozen=True, slots=True)
class Shares:
    """How often each kind of traffic and each kind of break happens (0 turns one off)."""

    timeout: float = 0.02  # answers that reach Marqeta after --timeout-ms (network delay)
    over_limit: float = 0.05  # authorizations above the cardholder's available balance
    fraud: float = 0.03  # CVV or AVS mismatches and bursts of small e-commerce payments
    incremental: float = 0.3  # approved hotel, car-rental and restaurant auths that grow
    inquiry: float = 0.05  # balance inquiries (per authorization)
    reversal: float = 0.06  # reversed: in full, in part, or lowered by an advice
    partial: float = 0.08  # cleared for less than authorized
    over: float = 0.05  # cleared for more (tips, fuel)
    multi: float = 0.05  # cleared in two or three clearings
    expiry: float = 0.01  # expired by Marqeta (issuer expiration)
    open: float = 0.10  # still authorized, not cleared, at the end of the day
    force_post: float = 0.02  # clearings with no authorization (per authorization)
    refund: float = 0.03  # merchant refunds (per authorization)
    standin: float = 0.01  # network stand-in approvals we were never asked about
    duplicate: float = 0.03  # webhook events Marqeta sends twice
    out_of_order: float = 0.03  # chains whose events arrive out of order
    late_reversal: float = 0.01  # reversals after the final clearing (nothing left to release)
    amount_mismatch: float = 0.01  # final clearings whose amount_to_be_released is wrong
    unknown_card: float = 0.005  # force posts for a card the platform does not know
    file_only: float = 0.0  # clearings only in the clearing file (their webhook was lost)

    @classmethod
    def names(cls) -> list[str]:
        return [item.name for item in fields(cls)]


HELP = {
    "timeout": "JIT answers that reach Marqeta after --timeout-ms (simulated network delay)",
    "over_limit": "authorizations above the cardholder's available balance",
    "fraud": "fraud-like authorizations: CVV or AVS mismatch, bursts of small payments",
    "incremental": "approved hotel, car-rental and restaurant authorizations incremented later",
    "inquiry": "balance inquiries, per authorization",
    "reversal": "approved authorizations reversed (full, partial, or lowered by an advice)",
    "partial": "authorizations cleared for less than authorized",
    "over": "authorizations cleared for more than authorized (tips, fuel)",
    "multi": "authorizations cleared in two or three clearings",
    "expiry": "authorizations expired by Marqeta",
    "open": "authorizations still pending at the end of the day",
    "force_post": "force posts (clearings with no authorization), per authorization",
    "refund": "merchant refunds, per authorization",
    "standin": "network stand-in approvals (no JIT request), per authorization",
    "duplicate": "webhook events sent twice",
    "out_of_order": "chains whose webhooks arrive out of order",
    "late_reversal": "reversals after the final clearing (opens reversal_without_hold)",
    "amount_mismatch": "final clearings with a wrong amount_to_be_released (amount_mismatch)",
    "unknown_card": "force posts for a card the platform does not know (unknown_card)",
    "file_only": "clearings only in the clearing file (needs pull_clearing_files)",
}


def count(share: float, total: int) -> int:
    """How many of `total` get a break: a share, and at least one when the share is not 0."""
    if share <= 0 or total <= 0:
        return 0
    return min(total, max(1, round(share * total)))


def seeded(*parts: object) -> random.Random:
    """A generator for one part of the day: the same seed, the same day."""
    return random.Random(":".join(str(part) for part in parts))  # noqa: S311 - not secrets


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Tokens:
    """Readable, unique tokens for one run: `sim-<run>-t000042` (Marqeta's are UUIDs; any
    string of at most 36 characters is valid, MARQETA.md §2.5)."""

    def __init__(self, run_id: str) -> None:
        self.prefix = f"sim-{run_id}-"
        self._next = 0

    def new(self, kind: str) -> str:
        self._next += 1
        return f"{self.prefix}{kind}{self._next:06d}"

    def message(self, **fields_: object) -> Message:
        """A message with fresh transaction, JIT and GPA-order tokens."""
        number = self.new("t")[len(self.prefix) + 1 :]
        return Message(
            token=f"{self.prefix}t{number}",
            jit_token=f"{self.prefix}j{number}",
            order_token=f"gpo-{self.prefix}{number}",
            created_time=utc_now(),
            **fields_,
        )


def _digits(rng: random.Random, length: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(length))


def new_facts(
    rng: random.Random, *, card: SimCard, merchant: Merchant, funding_source_token: str
) -> Facts:
    kind = "atm" if merchant.channel == ATM else "purchase"
    return Facts(
        card=card,
        merchant=merchant,
        funding_source_token=funding_source_token,
        network_reference_id=_digits(rng, 15),
        approval_code=_digits(rng, 6),
        acquirer_reference_data=_digits(rng, 23),
        retrieval_reference_number=_digits(rng, 12),
        stan=_digits(rng, 6),
        user_transaction_time=utc_now(),
        kind=kind,
        risk_scores=(rng.randrange(1, 30), rng.randrange(1, 10)),
    )


# --- the day's authorizations -----------------------------------------------------------------

PURCHASE, ATM_WITHDRAWAL, PIN_DEBIT, VERIFY, INQUIRY = "purchase", "atm", "pin", "verify", "inquiry"
KIND_WEIGHTS = {PURCHASE: 0.85, ATM_WITHDRAWAL: 0.08, PIN_DEBIT: 0.05, VERIFY: 0.02}


@dataclass(slots=True)
class Increment:
    gap: int  # steps after its authorization
    percent: int  # of the authorization's amount
    late_ms: int


@dataclass(slots=True)
class Step:
    """One JIT request (with any incrementals that follow it later)."""

    kind: str
    card_index: int
    merchant: Merchant
    amount_minor: int
    over_limit_extra_minor: int = 0  # > 0: ask for available + this, at send time
    fraud: str = ""  # "" | cvv | avs | burst
    late_ms: int = 0  # simulated network delay added to our answer
    increments: list[Increment] = field(default_factory=list)
    seed: int = 0  # for the network references of this purchase


def card_weights(cards: int) -> list[int]:
    """Some cards are busier than others (Zipf-like: 60, 30, 20, 15, 12 …)."""
    return [60 // (i + 1) or 1 for i in range(cards)]


def _card_index(rng: random.Random, cards: int) -> int:
    return rng.choices(range(cards), weights=card_weights(cards))[0]


def plan_day(
    rng: random.Random, *, cards: int, authorizations: int, shares: Shares, timeout_ms: int
) -> list[Step]:
    """The day's JIT requests, in order, drawn entirely from `rng`."""
    steps: list[Step] = []
    kinds = list(KIND_WEIGHTS)
    for _ in range(authorizations):
        kind = rng.choices(kinds, weights=list(KIND_WEIGHTS.values()))[0]
        if kind == ATM_WITHDRAWAL:
            merchant = pick_merchant(rng, channel=ATM, foreign=rng.random() < 0.1)
        elif kind == PIN_DEBIT:
            merchant = pick_merchant(rng, channel=CARD_PRESENT, foreign=False)
        else:
            channel = ECOMMERCE if rng.random() < 0.35 else CARD_PRESENT
            merchant = pick_merchant(rng, channel=channel, foreign=rng.random() < 0.1)
        amount = 0 if kind == VERIFY else purchase_amount(rng, merchant)
        step = Step(kind, _card_index(rng, cards), merchant, amount, seed=rng.getrandbits(32))
        if merchant.incremental and kind == PURCHASE and rng.random() < shares.incremental:
            step.increments = [
                Increment(rng.randrange(1, 25), rng.randrange(10, 41), 0)
                for _ in range(rng.choice((1, 1, 2)))
            ]
        steps.append(step)
    decided = [i for i, s in enumerate(steps) if s.kind in (PURCHASE, ATM_WITHDRAWAL)]
    for index in rng.sample(decided, count(shares.over_limit, len(decided))):
        steps[index].over_limit_extra_minor = rng.randrange(100, 50_000)
    for index in rng.sample(decided, count(shares.timeout, len(decided))):
        steps[index].late_ms = timeout_ms + rng.randrange(50, 2_000)
    for step in steps:
        for increment in step.increments:
            if rng.random() < shares.timeout:
                increment.late_ms = timeout_ms + rng.randrange(50, 2_000)
    purchases = [i for i, s in enumerate(steps) if s.kind == PURCHASE]
    frauds = rng.sample(purchases, count(shares.fraud, len(purchases)))
    for number, index in enumerate(sorted(frauds)):
        steps[index].fraud = ("cvv", "avs", "burst")[number % 3]
    steps = _expand_bursts(rng, steps)
    for _ in range(count(shares.inquiry, authorizations)):
        merchant = pick_merchant(rng, channel=ATM, foreign=False)
        inquiry = Step(INQUIRY, _card_index(rng, cards), merchant, 0, seed=rng.getrandbits(32))
        steps.insert(rng.randrange(len(steps) + 1), inquiry)
    return steps


def _expand_bursts(rng: random.Random, steps: list[Step]) -> list[Step]:
    """A burst: five small e-commerce payments on one card within a second."""
    expanded: list[Step] = []
    small = [m for m in MERCHANTS if m.channel == ECOMMERCE and m.low_minor <= 1000]
    for step in steps:
        if step.fraud != "burst":
            expanded.append(step)
            continue
        merchant = rng.choice(small)
        for _ in range(5):
            amount = rng.randrange(100, 600)
            expanded.append(
                Step(
                    PURCHASE,
                    step.card_index,
                    merchant,
                    amount,
                    fraud="burst",
                    seed=rng.getrandbits(32),
                )
            )
    return expanded


# --- the day's webhooks -----------------------------------------------------------------------

EXACT, PARTIAL, OVER, MULTI, FULL_REVERSAL, PARTIAL_REVERSAL, ADVICE, EXPIRY, OPEN, FILE_ONLY = (
    "exact",
    "partial",
    "over",
    "multi",
    "full_reversal",
    "partial_reversal",
    "advice",
    "expiry",
    "open",
    "file_only",
)


@dataclass(slots=True)
class Plan:
    """Everything the webhook phase sends, and what the platform must end up with."""

    events: list[Event] = field(default_factory=list)
    exceptions: Counter = field(default_factory=Counter)
    duplicates: list[tuple[Event, str]] = field(default_factory=list)  # (event, how)
    out_of_order: int = 0
    file_only: list[Event] = field(default_factory=list)  # lines whose webhook was "lost"
    fates: Counter = field(default_factory=Counter)

    def halves(self) -> list[list[Event]]:
        """The physical waves, in sending order: per logical wave, credits then debits."""
        last = max((event.wave for event in self.events), default=-1)
        halves = []
        for wave in range(last + 1):
            for sign in ("+", "-"):
                half = [e for e in self.events if e.wave == wave and e.sign == sign]
                if half:
                    halves.append(sorted(half, key=lambda e: not e.first))
        return halves


class WebhookPlanner:
    """Turns the authorization chains into the day's webhooks, wave by wave."""

    def __init__(
        self,
        rng: random.Random,
        *,
        tokens: Tokens,
        shares: Shares,
        authorizations: int,
        funding_source_token: str,
    ) -> None:
        self.rng, self.tokens, self.shares = rng, tokens, shares
        self.authorizations = authorizations
        self.funding_source_token = funding_source_token
        self.plan = Plan()
        self._record = 34_000_000

    # events -----------------------------------------------------------------------------------

    def _add(self, event: Event) -> Event:
        self.plan.events.append(event)
        return event

    def _event(
        self,
        chain: Chain | None,
        facts: Facts,
        message: Message,
        body: dict,
        *,
        label: str,
        wave: int,
        delta_minor: int = 0,
        status: str = "applied",
        in_file: bool = False,
        debit: bool = True,
    ) -> Event:
        return self._add(
            Event(
                token=message.token,
                type=message.type,
                body=body,
                user_token=facts.card.user_token,
                label=label,
                wave=wave,
                delta_minor=delta_minor,
                status=status,
                in_file=in_file,
                debit=debit,
                facts=facts,
                message=message,
                chain=chain,
            )
        )

    def _companion(self, facts: Facts, message: Message, *, wave: int) -> None:
        body = payloads.companion_event(facts, message, token=f"{message.token}-gpa")
        self._add(
            Event(
                token=body["token"],
                type=body["type"],
                body=body,
                user_token=facts.card.user_token,
                label="companion funding event",
                wave=wave,
                status="ignored",
            )
        )

    # wave 0: the authorization outcomes ---------------------------------------------------------

    def authorization_outcomes(self, chain: Chain) -> None:
        """What Marqeta says about each message: confirmed, declined, timed out, stood in."""
        facts = chain.facts
        for auth in chain.messages:
            message = auth.message
            if chain.kind == "inquiry":
                body = payloads.balance_inquiry_event(
                    facts, message, answered=auth.ours == APPROVED and auth.marqeta.approved
                )
                self._event(
                    chain, facts, message, body, label="balance inquiry", wave=0, status="ignored"
                )
                continue
            body = payloads.authorization_event(
                facts, message, outcome=auth.marqeta, gateway=auth.gateway
            )
            delta, label = self._outcome_effect(chain, auth)
            self._event(chain, facts, message, body, label=label, wave=0, delta_minor=delta)
            if auth.marqeta.approved:
                self._companion(facts, message, wave=0)

    def _outcome_effect(self, chain: Chain, auth: AuthMessage) -> tuple[int, str]:
        amount = auth.amount_minor
        kind = auth.message.type
        if auth.ours == APPROVED and auth.marqeta.approved:
            return 0, f"{kind} (confirmed)"
        if auth.ours == APPROVED:  # timed out at Marqeta, declined: our hold goes back
            if amount == 0 or chain.kind in ("pin", "verify"):
                return 0, f"{kind} (timed out; nothing held)"
            self.plan.exceptions["unconfirmed_approval"] += 1
            return chain.release(amount), f"{kind} (timed out: declined by Marqeta)"
        if auth.marqeta.approved:  # a stand-in approved what we declined or never saw
            self.plan.exceptions["standin_approval"] += 1
            if chain.kind == "pin":
                return -amount, f"{kind} (stand-in, captured)"
            return chain.hold(amount), f"{kind} (stand-in {auth.marqeta.standin_by})"
        return 0, f"{kind} (declined)"

    # the follow-ups: reversals, advices, expiries, clearings ----------------------------------

    def assign_fates(self, chains: list[Chain]) -> None:
        eligible = [
            c
            for c in chains
            if c.kind in ("purchase", "atm", "network_standin")
            and c.approved_by_marqeta
            and c.remaining_minor > 0
        ]
        self.rng.shuffle(eligible)
        shares, n = self.shares, len(eligible)
        quotas = [
            (FULL_REVERSAL, count(shares.reversal / 2, n)),
            (PARTIAL_REVERSAL, count(shares.reversal / 4, n)),
            (ADVICE, count(shares.reversal / 4, n)),
            (PARTIAL, count(shares.partial, n)),
            (OVER, count(shares.over, n)),
            (MULTI, count(shares.multi, n)),
            (EXPIRY, count(shares.expiry, n)),
            (OPEN, count(shares.open, n)),
            (FILE_ONLY, count(shares.file_only, n)),
        ]
        pool = list(eligible)
        for fate, quota in quotas:
            for chain in [c for c in pool if _fate_fits(c, fate)][:quota]:
                chain.fate = fate
                pool.remove(chain)
        for chain in pool:
            chain.fate = EXACT
        self.plan.fates.update(chain.fate for chain in eligible)

    def follow_ups(self, chain: Chain) -> None:
        """The chain's events after its authorization, one wave each."""
        fate, remaining = chain.fate, chain.remaining_minor
        if fate in ("", OPEN):
            return
        if fate == FILE_ONLY:
            self._clearing(chain, remaining, wave=1, label="clearing (file only)", file_only=True)
            return
        if fate == FULL_REVERSAL:
            self._release(
                chain,
                "authorization.reversal",
                remaining,
                wave=1,
                state="CLEARED",
                label="reversal (full)",
            )
        elif fate == EXPIRY:
            self._release(
                chain,
                "authorization.reversal.issuerexpiration",
                remaining,
                wave=1,
                state="CLEARED",
                label="expiry",
            )
        elif fate in (PARTIAL_REVERSAL, ADVICE):
            part = remaining * self.rng.randrange(10, 50) // 100
            if fate == ADVICE:
                self._release(
                    chain,
                    "authorization.advice",
                    part,
                    wave=1,
                    state="PENDING",
                    label="advice (amount lowered)",
                    total=remaining - part,
                )
            else:
                self._release(
                    chain,
                    "authorization.reversal",
                    part,
                    wave=1,
                    state="PENDING",
                    label="reversal (partial)",
                )
            self._clearing(chain, remaining - part, wave=2, label="clearing (exact)")
        elif fate == MULTI:
            parts = self.rng.choice((2, 3))
            total = remaining * self.rng.randrange(80, 101) // 100
            amounts = _split(self.rng, total, parts)
            for number, amount in enumerate(amounts, start=1):
                self._clearing(
                    chain,
                    amount,
                    wave=number,
                    sequence=(number, parts),
                    final=number == parts,
                    label=f"clearing ({number} of {parts})",
                )
        else:
            amount = {
                EXACT: remaining,
                PARTIAL: remaining * self.rng.randrange(50, 96) // 100,
                OVER: remaining * self.rng.randrange(105, 126) // 100,
            }[fate]
            self._clearing(chain, amount, wave=1, label=f"clearing ({fate})")

    def _follow_up_message(
        self, chain: Chain, type_: str, method: str, amount: int, **kw: object
    ) -> Message:
        root = chain.root.message
        approved = [a.message for a in chain.messages[1:] if a.marqeta.approved]
        return self.tokens.message(
            type=type_,
            method=method,
            amount_minor=amount,
            preceding=root.token,
            original_jit=root.jit_token,
            incremental_txns=[m.token for m in approved] if "clearing" in type_ else [],
            incremental_jits=[m.jit_token for m in approved] if "clearing" in type_ else [],
            **kw,
        )

    def _release(
        self,
        chain: Chain,
        type_: str,
        amount: int,
        *,
        wave: int,
        state: str,
        label: str,
        total: int | None = None,
        late: bool = False,
    ) -> Event:
        message = self._follow_up_message(
            chain, type_, "pgfs.authorization.reversal", amount, state=state, total_minor=total
        )
        body = payloads.follow_up_event(chain.facts, message, impacted_minor=amount)
        if late:
            event = self._event(
                chain, chain.facts, message, body, label=label, wave=wave, status="failed"
            )
            self.plan.exceptions["reversal_without_hold"] += 1
        else:
            delta = chain.release(None if "expiration" in type_ else amount)
            event = self._event(
                chain, chain.facts, message, body, label=label, wave=wave, delta_minor=delta
            )
        self._companion(chain.facts, message, wave=wave)
        return event

    def _clearing(
        self,
        chain: Chain,
        amount: int,
        *,
        wave: int,
        label: str,
        final: bool = True,
        sequence: tuple[int, int] | None = None,
        file_only: bool = False,
    ) -> Event:
        atm = chain.kind == "atm"
        message = self._follow_up_message(
            chain,
            "authorization.clearing.atm.withdrawal" if atm else "authorization.clearing",
            "pgfs.atm.clearing.withdrawal" if atm else "pgfs.authorization.capture",
            amount,
            state="COMPLETION",
        )
        held_before = chain.remaining_minor
        delta, released = chain.clear(amount, is_final=final)
        self._record += self.rng.randrange(1, 400)
        body = payloads.follow_up_event(chain.facts, message, impacted_minor=-amount)
        body.update(
            payloads.clearing_fields(
                chain.facts,
                is_final=final,
                released_minor=released or None,
                sequence=sequence,
                record_number=f"{self._record:08d}",
                batch_number=message.created_time[:10].replace("-", "") + "01",
                interchange_minor=max(1, amount * 145 // 10_000),
            )
        )
        event = Event(
            token=message.token,
            type=message.type,
            body=body,
            user_token=chain.user_token,
            label=label,
            wave=wave,
            delta_minor=delta,
            in_file=True,
            held_before_minor=held_before,
            facts=chain.facts,
            message=message,
            chain=chain,
        )
        if file_only:
            self.plan.file_only.append(event)
        else:
            self._add(event)
        return event

    # breaks -----------------------------------------------------------------------------------

    def plant_amount_mismatches(self) -> None:
        """Marqeta's `amount_to_be_released` off by 1.00: we release ours and flag it."""
        finals = [
            e
            for e in self.plan.events
            if e.body.get("amount_to_be_released") is not None and e.chain is not None
        ]
        for event in self.rng.sample(finals, min(len(finals), self._count("amount_mismatch"))):
            facts = event.chain.facts
            event.body["amount_to_be_released"] = event.body["amount_to_be_released"] + facts.money(
                100
            )
            event.label += ", wrong amount_to_be_released"
            self.plan.exceptions["amount_mismatch"] += 1

    def plant_late_reversals(self, chains: list[Chain]) -> None:
        """A reversal that comes after the final clearing: there is nothing left to release."""
        cleared = [c for c in chains if c.fate in (EXACT, PARTIAL, OVER) and c.closed]
        for chain in self.rng.sample(cleared, min(len(cleared), self._count("late_reversal"))):
            self._release(
                chain,
                "authorization.reversal",
                chain.root.amount_minor,
                wave=2,
                state="CLEARED",
                label="reversal after clearing",
                late=True,
            )

    def force_posts(self, cards: list[SimCard], ghosts: list[SimCard]) -> None:
        parking = [m for m in MERCHANTS if m.mcc in ("7523", "4121", "5541")]
        wanted = self._count("force_post")
        for number in range(wanted + len(ghosts)):
            ghost = number >= wanted
            card = ghosts[number - wanted] if ghost else self.rng.choice(cards)
            facts = new_facts(
                self.rng,
                card=card,
                merchant=self.rng.choice(parking),
                funding_source_token=self.funding_source_token,
            )
            amount = self.rng.randrange(300, 6_000)
            message = self.tokens.message(
                type="authorization.clearing",
                method="pgfs.force_capture",
                amount_minor=amount,
                state="COMPLETION",
            )
            self._record += self.rng.randrange(1, 400)
            body = payloads.follow_up_event(facts, message, impacted_minor=-amount)
            fields_ = payloads.clearing_fields(
                facts,
                is_final=None,
                released_minor=None,
                sequence=None,
                record_number=f"{self._record:08d}",
                batch_number=message.created_time[:10].replace("-", "") + "01",
                interchange_minor=max(1, amount * 145 // 10_000),
            )
            fields_.pop("approval_code")
            body.update(fields_)
            if ghost:
                self.plan.exceptions["unknown_card"] += 1
                self._event(
                    None,
                    facts,
                    message,
                    body,
                    label="force post (unknown card)",
                    wave=self.rng.randrange(1, 3),
                    status="failed",
                )
            else:
                self._event(
                    None,
                    facts,
                    message,
                    body,
                    label="force post",
                    wave=self.rng.randrange(1, 3),
                    delta_minor=-amount,
                    in_file=True,
                )

    def refunds(self, cards: list[SimCard]) -> None:
        shops = [m for m in MERCHANTS if m.channel == ECOMMERCE or m.mcc in ("5311", "5411")]
        for _ in range(self._count("refund")):
            facts = new_facts(
                self.rng,
                card=self.rng.choice(cards),
                merchant=self.rng.choice(shops),
                funding_source_token=self.funding_source_token,
            )
            amount = self.rng.randrange(500, 8_000)
            message = self.tokens.message(
                type="refund",
                method="pgfs.refund",
                amount_minor=amount,
                state="COMPLETION",
                unload=True,
            )
            body = payloads.follow_up_event(facts, message, impacted_minor=amount)
            self._event(
                None,
                facts,
                message,
                body,
                label="refund",
                wave=self.rng.randrange(1, 3),
                delta_minor=amount,
                in_file=True,
                debit=False,
            )

    def make_out_of_order(self, chains: list[Chain]) -> None:
        """Some chains' events arrive in the wrong order: the platform must cope.

        Our own approvals: the clearing comes before the authorization notification (we hold
        it already). Network stand-ins: the clearing comes before the authorization it clears,
        waits for it and is applied once it arrives.
        """
        candidates = []
        for chain in chains:
            events = [e for e in self.plan.events if e.chain is chain]
            head = [e for e in events if e.wave == 0]
            tail = [e for e in events if e.wave > 0]
            if not tail or not head:
                continue
            if chain.kind == "network_standin":
                if chain.fate in (EXACT, OVER) and len(tail) == 1:
                    candidates.append((chain, head, tail))
            elif all(e.delta_minor == 0 for e in head) and chain.fate != FILE_ONLY:
                candidates.append((chain, head, tail))
        wanted = self._count("out_of_order")
        standins = [c for c in candidates if c[0].kind == "network_standin"]
        others = [c for c in candidates if c[0].kind != "network_standin"]
        chosen = self.rng.sample(standins, min(len(standins), max(1, wanted // 2), wanted))
        chosen += self.rng.sample(others, min(len(others), wanted - len(chosen)))
        last = max(e.wave for e in self.plan.events) + 1
        for chain, head, tail in chosen:
            self.plan.out_of_order += 1
            if chain.kind == "network_standin":
                clearing = next(e for e in tail if e.type.startswith("authorization.clearing"))
                clearing.wave, clearing.first = 0, True
                clearing.label += ", before its authorization"
            else:
                for event in head:
                    event.wave = last
                    event.label += ", after its clearing"

    def plant_duplicates(self) -> None:
        """Marqeta retries: some events come again, in a later POST or twice in one."""
        pool = [e for e in self.plan.events if not e.first]
        for event in self.rng.sample(pool, min(len(pool), self._count("duplicate", events=True))):
            how = self.rng.choice(("same envelope", "later POST"))
            self.plan.duplicates.append((event, how))

    def _count(self, name: str, *, events: bool = False) -> int:
        total = len(self.plan.events) if events else self.authorizations
        return count(getattr(self.shares, name), total)


def _fate_fits(chain: Chain, fate: str) -> bool:
    remaining = chain.remaining_minor
    if chain.kind == "atm":
        return fate in (FULL_REVERSAL, OPEN, FILE_ONLY)
    if chain.kind == "network_standin":
        return fate in (OVER, OPEN)
    if fate in (PARTIAL, PARTIAL_REVERSAL, ADVICE):
        return remaining >= 200
    if fate == MULTI:
        return remaining >= 300
    return True


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` in `parts` positive amounts."""
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    bounds = [0, *cuts, total]
    return [high - low for low, high in zip(bounds, bounds[1:], strict=False)]


def network_standin_chain(
    rng: random.Random,
    *,
    tokens: Tokens,
    card: SimCard,
    funding_source_token: str,
) -> Chain:
    """The network approved while Marqeta was unreachable: no JIT request ever reached us."""
    merchant = pick_merchant(rng, channel=CARD_PRESENT, foreign=False)
    facts = new_facts(rng, card=card, merchant=merchant, funding_source_token=funding_source_token)
    amount = purchase_amount(rng, merchant)
    message = tokens.message(
        type="authorization.standin", method="pgfs.authorization.standin", amount_minor=amount
    )
    outcome = MarqetaOutcome(approved=True, standin_by="NETWORK", standin_reason="ISSUER_TIMEOUT")
    chain = Chain(facts=facts, kind="network_standin")
    chain.messages.append(AuthMessage(message=message, marqeta=outcome))
    return chain
