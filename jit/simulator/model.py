"""What Marqeta believes happened, and what the platform must therefore show.

The fake knows every amount it sent and every answer it got back, so the outcome is exact:
each authorization chain (an authorization and its incrementals) is followed the way the ledger
follows it (MARQETA.md §6.4): holds placed by approvals, releases newest first, clearings taken
from the hold oldest first, the rest released by the final clearing, any excess charged to
available. `Expectations` collects the end state per cardholder and the exceptions each planted
break must open.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jit.simulator.payloads import Facts, GatewayOutcome, MarqetaOutcome, Message

APPROVED, DECLINED, UNKNOWN, NONE = "approved", "declined", "unknown", "none"


class NothingHeld(Exception):
    """The chain holds nothing now: a release would be refused (`hold_not_open`)."""


@dataclass(slots=True)
class AuthMessage:
    """One authorization message of a chain (the first one or an incremental)."""

    message: Message
    ours: str = NONE  # approved | declined | unknown (no usable answer) | none (never asked)
    decline_reason: str = ""  # the one we sent with a 402
    gateway: GatewayOutcome | None = None  # None: no JIT request (network stand-in)
    marqeta: MarqetaOutcome = field(default_factory=lambda: MarqetaOutcome(approved=False))
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None

    @property
    def amount_minor(self) -> int:
        return self.message.amount_minor


@dataclass(slots=True)
class Chain:
    """An authorization and everything that follows it, as the platform's ledger sees it.

    `remaining_minor` is what the chain's holds still reserve; `closed` once a final clearing,
    an expiry or a release to zero has closed every hold of the chain.
    """

    facts: Facts
    kind: str  # purchase | atm | pin | verify | network_standin | inquiry
    messages: list[AuthMessage] = field(default_factory=list)
    remaining_minor: int = 0
    closed: bool = False
    fate: str = ""
    cleared_minor: int = 0

    @property
    def root(self) -> AuthMessage:
        return self.messages[0]

    @property
    def user_token(self) -> str:
        return self.facts.card.user_token

    @property
    def approved_by_marqeta(self) -> bool:
        return self.root.marqeta.approved

    def hold(self, amount_minor: int) -> int:
        """A hold placed (by our approval or a stand-in); returns the change to available."""
        self.remaining_minor += amount_minor
        self.closed = False
        return -amount_minor

    def release(self, amount_minor: int | None) -> int:
        """A reversal, advice or expiry (None: everything); returns the change to available."""
        if self.closed or self.remaining_minor == 0:
            raise NothingHeld
        released = min(amount_minor or self.remaining_minor, self.remaining_minor)
        self.remaining_minor -= released
        self.closed = self.remaining_minor == 0 or amount_minor is None
        return released

    def clear(self, amount_minor: int, *, is_final: bool) -> tuple[int, int]:
        """A clearing: (change to available, amount released by it)."""
        from_hold = 0 if self.closed else min(amount_minor, self.remaining_minor)
        self.remaining_minor -= from_hold
        released = self.remaining_minor if is_final and not self.closed else 0
        self.remaining_minor -= released
        self.closed = self.closed or is_final or self.remaining_minor == 0
        self.cleared_minor += amount_minor
        excess = amount_minor - from_hold
        return released - excess, released


@dataclass(slots=True)
class Event:
    """One webhook transaction to send, with what it will do to the platform."""

    token: str
    type: str
    body: dict[str, Any]
    user_token: str
    label: str  # for the summary, e.g. "clearing (over)"
    wave: int = 0  # logical step: an event follows the one of the same chain in wave - 1
    delta_minor: int = 0  # change to the cardholder's available when the platform applies it
    status: str = "applied"  # the WebhookEvent status the platform must reach
    first: bool = False  # an out-of-order child: sent before its parent, in the same wave
    in_file: bool = False  # also a line of the day's clearing file
    debit: bool = True  # file direction: D charges the cardholder, C credits them
    held_before_minor: int = 0  # a file-only clearing: what its chain held before it
    facts: Facts | None = None
    message: Message | None = None
    chain: Chain | None = None

    @property
    def sign(self) -> str:
        """Which half of its wave it goes in: credits first, then debits (see `scenario`)."""
        return "-" if self.delta_minor < 0 or self.first else "+"


@dataclass(slots=True)
class Expectations:
    """The end state the platform must show for the run's cardholders."""

    start_available: dict[str, int]  # before the run (read from the platform)
    available: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    exceptions: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)  # WebhookEvent status -> count
    decisions: int = 0  # JIT messages answered (each is one JitDecision)
    approvals: int = 0  # of those, approved by us
    duplicates: int = 0  # events the webhook endpoint must report as duplicates


def negative_crossings(
    *, start: dict[str, int], halves: list[list[Event]]
) -> tuple[Counter, dict[str, int]]:
    """Times each cardholder's available goes from >= 0 to < 0, and where it ends.

    Each half-wave holds only credits or only debits per cardholder, so its path is monotone
    and the count does not depend on the order the platform applies it in. Every debit that
    can cross zero (stand-in hold, over-clearing, force post) opens one `negative_balance`
    exception per negative episode.
    """
    available = dict(start)
    crossings: Counter = Counter()
    for half in halves:
        before = dict(available)
        for event in half:
            available[event.user_token] = available.get(event.user_token, 0) + event.delta_minor
        for user, after in available.items():
            if before.get(user, 0) >= 0 > after:
                crossings[user] += 1
    return crossings, available
