"""One simulated day against a running platform: cards, authorizations, webhooks, file, check.

setup       fresh cardholders and cards through the internal API, with a deposit each
authorize   the day's JIT requests at --rate, judged against --timeout-ms
(barrier)   the ledger writer has written every decision
notify      the webhooks, wave by wave (`scenario`), each wave applied before the next
file        the day's clearing file into the inbox (then pull_clearing_files, if it exists)
check       balances (API and ledger), exceptions, webhook outcomes, decisions recorded
"""

from __future__ import annotations

import heapq
import itertools
import random
import secrets
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from jit.simulator import payloads
from jit.simulator.clearing_file import ClearingFile, write_clearing_file
from jit.simulator.model import (
    APPROVED,
    DECLINED,
    NONE,
    UNKNOWN,
    AuthMessage,
    Chain,
    Event,
    Expectations,
    negative_crossings,
)
from jit.simulator.payloads import Facts, GatewayOutcome, MarqetaOutcome, Message, SimCard
from jit.simulator.platform import LivePlatform
from jit.simulator.scenario import (
    ATM_WITHDRAWAL,
    INQUIRY,
    PIN_DEBIT,
    PURCHASE,
    VERIFY,
    Increment,
    Plan,
    Shares,
    Step,
    Tokens,
    WebhookPlanner,
    card_weights,
    count,
    network_standin_chain,
    new_facts,
    plan_day,
    seeded,
)
from jit.simulator.transport import PlatformError, Transport
from ledger.money import to_decimal, to_minor

ENVELOPE_MAX = 10  # MARQETA.md §7.2: up to 10 notifications per POST
FIRST_NAMES = ("Ada", "Grace", "Alan", "Katherine", "Edsger", "Barbara", "Donald", "Frances")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Johnson", "Dijkstra", "Liskov", "Knuth", "Allen")
AVERAGE_SPEND_MINOR = 100_00  # what an authorization asks for, on average (see merchants)
MESSAGE_SHAPES = {  # kind -> (type, method, facts.kind)
    PURCHASE: ("authorization", "pgfs.authorization", "purchase"),
    ATM_WITHDRAWAL: ("authorization.atm.withdrawal", "pgfs.atm.withdrawal", "atm"),
    PIN_DEBIT: ("pindebit", "pgfs.pindebit", "pin"),
    VERIFY: ("authorization", "pgfs.authorization.account_verification", "purchase"),
    INQUIRY: ("balanceinquiry", "pgfs.balanceinquiry", "atm"),
}


@dataclass(slots=True)
class Config:
    base_url: str = "http://127.0.0.1:8000"
    cards: int = 5
    authorizations: int = 200
    rate: float = 0.0  # JIT requests per second; 0 = as fast as the gateway answers
    seed: int = 42
    timeout_ms: int = 3000
    commando: bool = False
    shares: Shares = field(default_factory=Shares)
    write_file: bool = True
    check: bool = True
    run_id: str = ""
    inbox: Path | None = None
    settle_timeout: float = 120.0


class Progress:
    """tqdm when it is installed, else one line a second; silent when disabled."""

    def __init__(self, total: int, label: str, *, enabled: bool, stream: TextIO) -> None:
        self.total, self.label, self.done, self.stream = total, label, 0, stream
        self.enabled, self._bar, self._last = enabled, None, 0.0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=label, unit="msg", file=stream, leave=True)

    def update(self, step: int = 1) -> None:
        self.done += step
        if self._bar is not None:
            self._bar.update(step)
        elif self.enabled and time.monotonic() - self._last >= 1.0:
            self._last = time.monotonic()
            self.stream.write(f"  {self.label}: {self.done}/{self.total}\n")
            self.stream.flush()

    def shrink(self, step: int) -> None:
        """Fewer to do than planned (incrementals of a declined authorization)."""
        self.total -= step
        if self._bar is not None and step:
            self._bar.total = self.total
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self.stream.write(f"  {self.label}: {self.done}/{self.total} done\n")


@dataclass(slots=True)
class Report:
    """What was sent, what the platform should show, and how it differs."""

    config: Config
    prefix: str = ""
    cards: list[SimCard] = field(default_factory=list)
    currency_code: str = "USD"
    jit_by_kind: Counter = field(default_factory=Counter)
    jit_outcomes: Counter = field(default_factory=Counter)
    events_by_label: Counter = field(default_factory=Counter)
    posts: int = 0
    duplicates_sent: int = 0
    out_of_order: int = 0
    fates: Counter = field(default_factory=Counter)
    clearing_file: ClearingFile | None = None
    file_status: str = ""
    file_only: int = 0  # clearings whose webhook was "lost": only the file brings them
    expected: Expectations | None = None
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences

    def money(self, minor: int) -> str:
        return f"{to_decimal(minor, self.currency_code):,}"

    def render(self) -> str:  # noqa: C901 - a report, read top to bottom
        c, lines = self.config, []
        lines.append(
            f"Fake Marqeta day: seed {c.seed}, run {self.prefix.rstrip('-')}, {len(self.cards)} "
            f"cards, {c.authorizations} authorizations, timeout {c.timeout_ms} ms"
            + (", Commando Mode on" if c.commando else "")
            + f" -> {c.base_url}"
        )
        lines.append("")
        lines.append(f"Sent: {sum(self.jit_by_kind.values())} JIT funding requests")
        for kind, n in sorted(self.jit_by_kind.items()):
            lines.append(f"  {kind:<34} {n:>6}")
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.jit_outcomes.items()))
        lines.append(f"  answers: {outcomes}")
        total_events = sum(self.events_by_label.values())
        lines.append(
            f"Sent: {total_events} webhook events in {self.posts} POSTs "
            f"(+{self.duplicates_sent} duplicates, {self.out_of_order} chains out of order)"
        )
        for label, n in sorted(self.events_by_label.items()):
            lines.append(f"  {label:<60} {n:>5}")
        if self.fates:
            fates = ", ".join(f"{k} {v}" for k, v in sorted(self.fates.items()))
            lines.append(f"  authorization outcomes planned: {fates}")
        if self.clearing_file:
            f = self.clearing_file
            sign = "D" if f.net >= 0 else "C"
            only = f", {self.file_only} only in the file" if self.file_only else ""
            lines.append(
                f"Wrote: {f.path} ({f.lines} lines{only}, net {abs(f.net):,} "
                f"{f.currency_code} {sign})" + (f"; {self.file_status}" if self.file_status else "")
            )
        if self.expected:
            lines += self._render_expected(self.expected)
        lines += [f"Note: {note}" for note in self.notes]
        if not self.checked:
            stopped = "the run stopped early" if c.check else "--no-check"
            lines.append(f"Not checked ({stopped}).")
        elif self.ok:
            lines.append("Check: OK, the platform shows exactly what Marqeta did.")
        else:
            lines.append(f"Check: {len(self.differences)} difference(s):")
            lines += [f"  - {difference}" for difference in self.differences]
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        lines.append(f"Time: {timing}")
        return "\n".join(lines)

    def _render_expected(self, expected: Expectations) -> list[str]:
        lines = ["", "Expected on the platform:"]
        lines.append(f"  {'cardholder':<22} {'start':>12} {'available':>12} {'pending':>12}")
        for card in self.cards:
            user = card.user_token
            lines.append(
                f"  {user:<22} {self.money(expected.start_available.get(user, 0)):>12} "
                f"{self.money(expected.available.get(user, 0)):>12} "
                f"{self.money(expected.pending.get(user, 0)):>12}"
            )
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(expected.exceptions.items()) if v)
        lines.append(f"  exceptions: {kinds or 'none'}")
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(expected.statuses.items()))
        lines.append(f"  webhook events: {statuses}; duplicates reported {expected.duplicates}")
        lines.append(
            f"  JIT decisions recorded: {expected.decisions} ({expected.approvals} approved)"
        )
        return lines


class Simulation:
    """A day of Marqeta traffic. `platform` is how it waits and reads (tests replace it)."""

    def __init__(
        self,
        config: Config,
        *,
        transport: Transport,
        platform: LivePlatform,
        progress: bool = True,
        out: TextIO = sys.stderr,
    ) -> None:
        self.config, self.transport, self.platform = config, transport, platform
        self.progress, self.out = progress, out
        run_id = config.run_id or secrets.token_hex(3)
        self.tokens = Tokens(run_id)
        self.report = Report(config=config, prefix=self.tokens.prefix)
        self.cards: list[SimCard] = []
        self.start_available: dict[str, int] = {}
        self.available: dict[str, int] = {}  # the platform's view during the JIT phase
        self.chains: list[Chain] = []
        self.inquiry_mismatches: list[str] = []
        self.unknown_answers: list[AuthMessage] = []
        self.fallback_answers: list[AuthMessage] = []  # answered by the stand-in policy
        self.funding_source_token = ""
        self.program = ""
        self.post_problems: list[str] = []
        self.duplicates_reported = 0
        self.webhook_plan: Plan = Plan()

    # the run ----------------------------------------------------------------------------------

    def run(self) -> Report:
        self._timed("setup", self.setup_cards)
        self._timed("authorizations", self.authorize)
        self._timed("ledger writer", self._wait_for_writer)
        plan = self._timed("webhooks", self.notify)
        self._timed("clearing file", lambda: self.write_file(plan))
        expected = self.expectations(plan, file_ingested=self.report.file_status == "ingested")
        self.report.expected = expected
        if self.config.check:
            self.report.checked = True
            self._timed("check", lambda: self.check(expected))
        return self.report

    def _timed(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return action()
        finally:
            self.report.seconds[name] = time.monotonic() - started

    def _say(self, text: str) -> None:
        if self.progress:
            self.out.write(text + "\n")
            self.out.flush()

    # setup ------------------------------------------------------------------------------------

    def setup_cards(self) -> None:
        rng = seeded(self.config.seed, "cards")
        prefix = self.tokens.prefix
        self._say(f"Creating {self.config.cards} cardholders and cards ({prefix}*)")
        for index in range(self.config.cards):
            user, card_token = f"{prefix}u{index:03d}", f"{prefix}c{index:03d}"
            holder = self.transport.create_cardholder(
                token=user,
                first_name=FIRST_NAMES[index % len(FIRST_NAMES)],
                last_name=LAST_NAMES[(index * 3) % len(LAST_NAMES)],
                email=f"{user}@example.com",
            )
            currency, self.program = holder["currency_code"], holder["program"]
            if index == 0 and not self.platform.knows_cardholder(user):
                raise PlatformError(
                    f"{self.config.base_url} created {user} in a database this command does "
                    "not see: run it with the platform's DATABASE_URL and REDIS_URL"
                )
            last_four = f"{rng.randrange(10_000):04d}"
            self.transport.create_card(cardholder_token=user, token=card_token, last_four=last_four)
            deposit = self._deposit_minor(rng, index)
            self.transport.deposit(
                user_token=user,
                amount=str(to_decimal(deposit, currency)),
                currency_code=currency,
                key=f"{prefix}deposit-{index}",
            )
            self.cards.append(
                SimCard(
                    index=index,
                    user_token=user,
                    card_token=card_token,
                    last_four=last_four,
                    currency_code=currency,
                    program=self.program,
                    network=rng.choice(("VISA", "MASTERCARD")),
                    street_address=f"{rng.randrange(1, 999)} MAIN ST",
                    postal_code=f"{rng.randrange(10_000, 99_999)}",
                )
            )
        self.report.cards = self.cards
        self.report.currency_code = self.cards[0].currency_code if self.cards else "USD"
        self.funding_source_token = f"pgfs_{self.program}"
        for card in self.cards:
            balance = self.transport.balance(user_token=card.user_token)
            available = to_minor(balance["available"], card.currency_code)
            self.start_available[card.user_token] = available
            self.available[card.user_token] = available

    def _deposit_minor(self, rng: random.Random, index: int) -> int:
        """About what the card will spend today (0.8 to 1.5 times; busy cards get more), so
        most authorizations are approved and a few cards run low."""
        weights = card_weights(self.config.cards)
        spend = self.config.authorizations * AVERAGE_SPEND_MINOR * weights[index] / sum(weights)
        deposit = int(spend) * rng.randrange(80, 151) // 100
        return max(100_00, deposit // 100_00 * 100_00)

    # authorizations ---------------------------------------------------------------------------

    def authorize(self) -> None:
        config = self.config
        steps = plan_day(
            seeded(config.seed, "day"),
            cards=len(self.cards),
            authorizations=config.authorizations,
            shares=config.shares,
            timeout_ms=config.timeout_ms,
        )
        planned = len(steps) + sum(len(step.increments) for step in steps)
        progress = Progress(planned, "JIT requests", enabled=self.progress, stream=self.out)
        due: list[tuple[int, int, Chain, Increment]] = []
        started, sent, order = time.monotonic(), 0, itertools.count()
        for position, step in enumerate(steps):
            sent = self._pace(started, sent)
            chain = self._authorize(step)
            progress.update()
            root = chain.root
            if chain.kind == "purchase" and root.ours == APPROVED and root.marqeta.approved:
                for increment in step.increments:  # the stay or the rental grows, later on
                    heapq.heappush(due, (position + increment.gap, next(order), chain, increment))
            else:
                progress.shrink(len(step.increments))
            while due and due[0][0] <= position:
                sent = self._pace(started, sent)
                self._increment(*heapq.heappop(due)[2:])
                progress.update()
        while due:
            sent = self._pace(started, sent)
            self._increment(*heapq.heappop(due)[2:])
            progress.update()
        progress.close()

    def _pace(self, started: float, sent: int) -> int:
        if self.config.rate > 0:
            wait = started + sent / self.config.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        return sent + 1

    def _facts(self, step: Step, card: SimCard) -> Facts:
        facts = new_facts(
            seeded(step.seed),
            card=card,
            merchant=step.merchant,
            funding_source_token=self.funding_source_token,
        )
        facts.kind = MESSAGE_SHAPES[step.kind][2]
        if step.fraud == "cvv":
            facts.cvv_code, facts.risk, facts.risk_scores = "0001", "HIGH", (88, 61)
        elif step.fraud == "avs":
            facts.avs_code, facts.risk, facts.risk_scores = "0101", "MEDIUM", (71, 40)
        elif step.fraud == "burst":
            facts.risk = "MEDIUM"
        return facts

    def _authorize(self, step: Step) -> Chain:
        card = self.cards[step.card_index]
        facts = self._facts(step, card)
        type_, method, _ = MESSAGE_SHAPES[step.kind]
        amount = step.amount_minor
        if step.over_limit_extra_minor:
            amount = max(amount, self.available[card.user_token] + step.over_limit_extra_minor)
        message = self.tokens.message(
            type=type_,
            method=method,
            amount_minor=amount,
            state="COMPLETION" if step.kind == PIN_DEBIT else "PENDING",
        )
        auth = self._ask(facts, message, late_ms=step.late_ms, label=step.kind)
        kind = {ATM_WITHDRAWAL: "atm", PIN_DEBIT: "pin"}.get(step.kind, step.kind)
        chain = Chain(facts=facts, kind=kind, messages=[auth])
        self.chains.append(chain)
        self._apply_answer(chain, auth)
        if step.kind == INQUIRY:
            self._check_inquiry(card, auth)
        return chain

    def _increment(self, chain: Chain, increment: Increment) -> None:
        root = chain.root
        amount = max(1, root.amount_minor * increment.percent // 100)
        message = self.tokens.message(
            type="authorization.incremental",
            method="pgfs.authorization.incremental",
            amount_minor=amount,
            preceding=root.message.token,
            original_jit=root.message.jit_token,
        )
        auth = self._ask(chain.facts, message, late_ms=increment.late_ms, label="incremental")
        chain.messages.append(auth)
        self._apply_answer(chain, auth)

    def _ask(self, facts: Facts, message: Message, *, late_ms: int, label: str) -> AuthMessage:
        """Send one JIT request and judge the answer the way Marqeta would (§4, §5)."""
        request = payloads.jit_request(facts, message)
        answer = self.transport.jit(payloads.dumps(request))
        timeout_ms = self.config.timeout_ms
        duration = answer.elapsed_ms + late_ms
        timed_out = answer.status is None or duration > timeout_ms
        ours = {200: APPROVED, 402: DECLINED}.get(answer.status or 0, UNKNOWN)
        funding = (answer.body or {}).get("jit_funding") or {}
        decline_reason = funding.get("decline_reason", "") if ours == DECLINED else ""
        gateway = GatewayOutcome(
            duration_ms=min(duration, timeout_ms) if timed_out else duration,
            timed_out=timed_out,
            status=answer.status,
            response=answer.body,
        )
        in_time_answer = not timed_out and ours != UNKNOWN
        if not in_time_answer and self.config.commando and message.type != "balanceinquiry":
            why = "GATEWAY_TIMEOUT" if timed_out else "GATEWAY_APPLICATION_ERROR"
            outcome = MarqetaOutcome(approved=True, standin_by="COMMANDO_AUTO", standin_reason=why)
        elif in_time_answer and ours == APPROVED:
            outcome = MarqetaOutcome(approved=True)
        else:
            outcome = MarqetaOutcome(approved=False, decline_reason=decline_reason)
        auth = AuthMessage(
            message=message,
            ours=ours,
            decline_reason=decline_reason,
            gateway=gateway,
            marqeta=outcome,
            request=request,
            response=answer.body,
        )
        self.report.jit_by_kind[label] += 1
        self.report.jit_outcomes[_outcome_label(auth)] += 1
        if ours == UNKNOWN:
            self.unknown_answers.append(auth)
        if "fallback=1" in str(funding.get("tags", "")):  # Redis was slow or down (§5.2)
            self.fallback_answers.append(auth)
        return auth

    def _apply_answer(self, chain: Chain, auth: AuthMessage) -> None:
        """What our approval did at once: the cached available balance went down."""
        if auth.ours != APPROVED or auth.amount_minor == 0:
            return
        if chain.kind in ("purchase", "atm"):
            self.available[chain.user_token] += chain.hold(auth.amount_minor)
        elif chain.kind == "pin":  # single message: charged at once
            self.available[chain.user_token] -= auth.amount_minor

    def _check_inquiry(self, card: SimCard, auth: AuthMessage) -> None:
        if auth.ours != APPROVED:
            return
        balances = ((auth.response or {}).get("jit_funding") or {}).get("balances") or {}
        answered = (balances.get(card.currency_code) or {}).get("available_balance")
        expected = to_decimal(self.available[card.user_token], card.currency_code)
        if self.unknown_answers or any(a.ours == APPROVED for a in self.fallback_answers):
            return  # an answer the cache does not reflect yet: the model cannot say
        if answered is None or Decimal(str(answered)) != expected:
            self.inquiry_mismatches.append(
                f"balance inquiry {auth.message.jit_token} for {card.user_token}: "
                f"answered {answered}, expected {expected}"
            )

    def _wait_for_writer(self) -> None:
        self.platform.wait_for_ledger_writer(timeout=self.config.settle_timeout)
        if self.fallback_answers:  # their decisions are in the spool, not in the outbox
            self.platform.replay_standin_spool()
            self.report.notes.append(
                f"{len(self.fallback_answers)} JIT answer(s) came from the gateway's fallback "
                "policy (Redis slow or down); the stand-in spool was replayed"
            )
        if not self.unknown_answers:
            return
        recorded = self.platform.decisions([a.message.jit_token for a in self.unknown_answers])
        by_token = {a.message.jit_token: a for a in self.unknown_answers}
        for chain in self.chains:
            for auth in chain.messages:
                if auth.message.jit_token in by_token:
                    auth.ours = recorded.get(auth.message.jit_token, NONE)
                    self._apply_answer(chain, auth)
        self.report.notes.append(
            f"{len(self.unknown_answers)} JIT answer(s) were not 200/402; "
            "their outcome was read from the recorded decisions"
        )

    # webhooks ---------------------------------------------------------------------------------

    def plan_webhooks(self) -> WebhookPlanner:
        config = self.config
        planner = WebhookPlanner(
            seeded(config.seed, "webhooks"),
            tokens=self.tokens,
            shares=config.shares,
            authorizations=config.authorizations,
            funding_source_token=self.funding_source_token,
        )
        rng = seeded(config.seed, "standins")
        for _ in range(count(config.shares.standin, config.authorizations)):
            self.chains.append(
                network_standin_chain(
                    rng,
                    tokens=self.tokens,
                    card=rng.choice(self.cards),
                    funding_source_token=self.funding_source_token,
                )
            )
        for chain in self.chains:
            planner.authorization_outcomes(chain)
        planner.assign_fates(self.chains)
        for chain in self.chains:
            planner.follow_ups(chain)
        planner.plant_amount_mismatches()
        planner.plant_late_reversals(self.chains)
        ghosts = [
            SimCard(
                index=-1 - n,
                user_token=f"{self.tokens.prefix}x{n:03d}",
                card_token=f"{self.tokens.prefix}g{n:03d}",
                last_four="0000",
                currency_code=self.report.currency_code,
                program=self.program,
                network="VISA",
                street_address="1 NOWHERE RD",
                postal_code="00000",
            )
            for n in range(count(config.shares.unknown_card, config.authorizations))
        ]
        planner.force_posts(self.cards, ghosts)
        planner.refunds(self.cards)
        planner.make_out_of_order(self.chains)
        planner.plant_duplicates()
        return planner

    def notify(self) -> Plan:
        plan = self.webhook_plan = self.plan_webhooks().plan
        halves = plan.halves()
        again = {id(event) for event, how in plan.duplicates if how == "same envelope"}
        later = [event for event, how in plan.duplicates if how == "later POST"]
        posts = [self._envelopes(half, again) for half in halves]
        total = sum(len(batch) for batch in posts) + len(_batches(later, set()))
        progress = Progress(total, "webhook POSTs", enabled=self.progress, stream=self.out)
        for half, batches in zip(halves, posts, strict=True):
            for batch in batches:
                self._post(batch)
                progress.update()
            self.platform.settle([e.token for e in half], timeout=self.config.settle_timeout)
        for batch in _batches(later, set()):  # Marqeta's retries of events already delivered
            self._post(batch)
            progress.update()
        progress.close()
        self.report.events_by_label.update(event.label for event in plan.events)
        self.report.duplicates_sent = len(plan.duplicates)
        self.report.out_of_order = plan.out_of_order
        self.report.fates = plan.fates
        return plan

    def _envelopes(self, half: list[Event], again: set[int]) -> list[list[Event]]:
        """Out-of-order children go first, alone; the rest by type, ten to a POST."""
        first = [[event] for event in half if event.first]
        rest = [event for event in half if not event.first]
        return first + _batches(rest, again)

    def _post(self, batch: list[Event]) -> None:
        status, body = self.transport.webhook(payloads.envelope([e.body for e in batch]))
        self.report.posts += 1
        if status != 200:
            self.post_problems.append(f"a webhook POST of {len(batch)} event(s) got {status}")
            return
        self.duplicates_reported += int(body.get("duplicates", 0))

    # the clearing file ------------------------------------------------------------------------

    def write_file(self, plan: Plan) -> ClearingFile | None:
        if not self.config.write_file or self.config.inbox is None:
            return None
        lines = [e for e in plan.events if e.in_file] + plan.file_only
        lines += [  # single-message PIN debits settle too (record type `pindebit`, §12)
            Event(
                token=c.root.message.token,
                type="pindebit",
                body={},
                user_token=c.user_token,
                label="",
                facts=c.facts,
                message=c.root.message,
            )
            for c in self.chains
            if c.kind == "pin" and c.root.marqeta.approved
        ]
        file = write_clearing_file(
            lines,
            inbox=self.config.inbox,
            program=self.program,
            settlement_date=datetime.now(UTC).date(),
            currency_code=self.report.currency_code,
        )
        self.report.clearing_file = file
        self.report.file_only = len(plan.file_only)
        if self.platform.can_ingest_clearing_files():
            self.report.file_status = self.platform.ingest_clearing_file(
                file.path, timeout=self.config.settle_timeout
            )
        else:
            self.report.file_status = "not ingested: no pull_clearing_files command yet"
            if plan.file_only:
                self.report.notes.append(
                    f"{len(plan.file_only)} file-only clearing(s) stay pending: nothing ingests "
                    "the file"
                )
        return file

    # expectations and the check ---------------------------------------------------------------

    def expectations(self, plan: Plan, *, file_ingested: bool) -> Expectations:
        expected = Expectations(start_available=dict(self.start_available))
        crossings, final = negative_crossings(start=self.available, halves=plan.halves())
        users = [card.user_token for card in self.cards]
        expected.available = {user: final.get(user, 0) for user in users}
        pending: dict[str, int] = defaultdict(int)
        for chain in self.chains:
            pending[chain.user_token] += chain.remaining_minor
        if not file_ingested:
            for event in plan.file_only:
                pending[event.user_token] += event.held_before_minor
        expected.pending = {user: pending.get(user, 0) for user in users}
        expected.exceptions = Counter(plan.exceptions)
        expected.exceptions["negative_balance"] += sum(crossings.values())
        expected.statuses = Counter(event.status for event in plan.events)
        expected.duplicates = len(plan.duplicates)
        answered = [a for c in self.chains for a in c.messages if a.ours in (APPROVED, DECLINED)]
        expected.decisions = len(answered)
        expected.approvals = sum(1 for a in answered if a.ours == APPROVED)
        return expected

    def check(self, expected: Expectations) -> None:
        differences = self.report.differences
        differences += self.post_problems + self.inquiry_mismatches
        currency = self.report.currency_code
        users = [card.user_token for card in self.cards]
        ledger = self.platform.ledger_balances(users)
        for user in users:
            want = (expected.available[user], expected.pending[user])
            body = self.transport.balance(user_token=user)
            shown = (to_minor(body["available"], currency), to_minor(body["pending"], currency))
            if shown != want or body.get("source") != "cache":
                differences.append(
                    f"{user} balance API: available {self.report.money(shown[0])}, pending "
                    f"{self.report.money(shown[1])} ({body.get('source')}); expected "
                    f"{self.report.money(want[0])}, {self.report.money(want[1])} (cache)"
                )
            if ledger.get(user) != want:
                got = ledger.get(user)
                differences.append(f"{user} ledger: (available, pending) {got}, expected {want}")
        actual = self.platform.exceptions(self.tokens.prefix)
        for kind in sorted(set(actual) | {k for k, v in expected.exceptions.items() if v}):
            if actual.get(kind, 0) != expected.exceptions.get(kind, 0):
                differences.append(
                    f"exceptions {kind}: {actual.get(kind, 0)}, expected "
                    f"{expected.exceptions.get(kind, 0)}"
                )
        tokens = [event.token for event in self.webhook_plan.events]
        statuses = Counter(self.platform.event_statuses(tokens).values())
        if statuses != expected.statuses:
            differences.append(
                f"webhook events by status: {dict(statuses)}, expected {dict(expected.statuses)}"
            )
        if self.duplicates_reported != expected.duplicates:
            differences.append(
                f"duplicates reported by the webhook endpoint: {self.duplicates_reported}, "
                f"expected {expected.duplicates}"
            )
        recorded, approved = self.platform.decision_counts(self.tokens.prefix)
        if (recorded, approved) != (expected.decisions, expected.approvals):
            differences.append(
                f"JIT decisions recorded: {recorded} ({approved} approved), expected "
                f"{expected.decisions} ({expected.approvals} approved)"
            )
            differences += self._answers_unlike_records()
        if self.report.file_status == "rejected":
            differences.append(f"{self.report.clearing_file.path.name} was rejected")

    def _answers_unlike_records(self) -> list[str]:
        """Each JIT message whose recorded decision is not what the gateway answered."""
        answered = {
            a.message.jit_token: a
            for c in self.chains
            for a in c.messages
            if a.ours in (APPROVED, DECLINED)
        }
        recorded = self.platform.decisions(list(answered))
        found = []
        for token, auth in answered.items():
            if recorded.get(token) != auth.ours:
                tags = ((auth.response or {}).get("jit_funding") or {}).get("tags", "")
                found.append(
                    f"{token}: the gateway answered {auth.ours} ({tags or 'no tags'}) but "
                    f"recorded {recorded.get(token, 'nothing')}"
                )
        return found[:10]


def _outcome_label(auth: AuthMessage) -> str:
    gateway = auth.gateway
    if gateway is not None and gateway.timed_out:
        marqeta = "stand-in approval" if auth.marqeta.approved else "declined by Marqeta"
        return f"late ({auth.ours} by us, {marqeta})"
    return f"{auth.ours} in time"


def _batches(events: list[Event], again: set[int]) -> list[list[Event]]:
    """Events grouped by type, at most ten per envelope (a repeated one counts twice)."""
    by_type: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_type[event.type].append(event)
    batches: list[list[Event]] = []
    for group in by_type.values():
        batch: list[Event] = []
        for event in group:
            size = 2 if id(event) in again else 1
            if len(batch) + size > ENVELOPE_MAX:
                batches.append(batch)
                batch = []
            batch += [event] * size
        if batch:
            batches.append(batch)
    return batches
