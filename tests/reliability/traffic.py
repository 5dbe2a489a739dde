"""Marqeta's side of the scenarios: JIT requests and follow-ups built by the fake Marqeta.

Payloads come from `jit.simulator` (MARQETA.md shapes: `payloads.jit_request`, the clearing
file writer, `authorization_event`), cards are the bench population's (bench/population.py),
and HTTP goes through the simulator's `Transport`. `Traffic` sends at a paced rate from a
few threads and keeps every answer, so a scenario can hold the ledger to what Marqeta was told.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import population
from bench.openloop import percentile
from jit.simulator import payloads
from jit.simulator.clearing_file import ClearingFile, write_clearing_file
from jit.simulator.merchants import CARD_PRESENT, pick_merchant
from jit.simulator.model import Event
from jit.simulator.scenario import Tokens, new_facts
from jit.simulator.transport import Transport
from tests.reliability.stack import JIT_CREDENTIALS, WEBHOOK_CREDENTIALS, wait_until

logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request drowns the report
MARQETA_TIMEOUT_MS = 3_000  # Marqeta's default wait for our answer (MARQETA.md §4)
CLIENT_TIMEOUT_SECONDS = 10.0  # we wait longer, to learn what we answered late


@dataclass(frozen=True, slots=True)
class Purchase:
    """One card-present authorization, as Marqeta would send it."""

    facts: payloads.Facts
    message: payloads.Message

    @property
    def token(self) -> str:
        return self.message.jit_token

    def body(self) -> bytes:
        return payloads.dumps(payloads.jit_request(self.facts, self.message))


def sim_card(index: int, user_token: str, card_token: str) -> payloads.SimCard:
    return payloads.SimCard(
        index=index, user_token=user_token, card_token=card_token, last_four=f"{index:04d}"[-4:],
        currency_code=population.CURRENCY, program=population.PROGRAM, network="VISA",
        street_address="1 Reliability Way", postal_code="94607",
    )  # fmt: skip


class Shopper:
    """Purchases of 1.00 to 20.00: on the hot account with `hot_share`, else a cold one."""

    def __init__(self, run_id: str, *, cold: int, hot_share: float = 0.2) -> None:
        self.tokens, self.rng = Tokens(run_id), random.Random(run_id)  # noqa: S311
        self.hot = sim_card(0, population.HOT_USER, population.HOT_CARD)
        self.cold = [
            sim_card(n + 1, population.cold_user(n), population.cold_card(n)) for n in range(cold)
        ]
        self.hot_share, self.lock = hot_share, threading.Lock()
        self.sent: dict[str, Purchase] = {}

    def purchase(self, amount_minor: int | None = None) -> Purchase:
        with self.lock:
            hot = self.rng.random() < self.hot_share or not self.cold
            card = self.hot if hot else self.rng.choice(self.cold)
            merchant = pick_merchant(self.rng, channel=CARD_PRESENT, foreign=False)
            facts = new_facts(self.rng, card=card, merchant=merchant, funding_source_token="rel")
            message = self.tokens.message(
                type="authorization",
                method="pgfs.authorization",
                amount_minor=amount_minor or self.rng.randrange(100, 2_001),
            )
            purchase = Purchase(facts=facts, message=message)
            self.sent[purchase.token] = purchase
            return purchase


@dataclass(frozen=True, slots=True)
class Answer:
    """What Marqeta got back for one JIT request (status None: no answer at all)."""

    token: str
    status: int | None
    fallback: bool
    elapsed_ms: int
    at: float  # seconds since the traffic started

    @property
    def approved(self) -> bool:
        return self.status == 200


def transport(base_url: str) -> Transport:
    client = httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT_SECONDS)
    return Transport(
        client=client, jit_credentials=JIT_CREDENTIALS, webhook_credentials=WEBHOOK_CREDENTIALS
    )


def ask(sender: Transport, purchase: Purchase, started: float) -> Answer:
    """Send one JIT request and note how Marqeta saw the answer."""
    sent_at = time.monotonic() - started
    answer = sender.jit(purchase.body())
    tags = ((answer.body or {}).get("jit_funding") or {}).get("tags", "")
    return Answer(purchase.token, answer.status, "fallback=1" in tags, answer.elapsed_ms, sent_at)


@dataclass
class Traffic:
    """JIT requests at `rate` per second from `threads` threads until stopped."""

    base_url: str
    shopper: Shopper
    rate: float
    threads: int = 6
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop, self._lock, self._next = threading.Event(), threading.Lock(), 0
        self._workers: list[threading.Thread] = []
        self.started = time.monotonic()

    def start(self) -> Traffic:
        self.started = time.monotonic()
        for number in range(self.threads):
            worker = threading.Thread(target=self._send, name=f"traffic-{number}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _slot(self) -> float:
        with self._lock:
            self._next += 1
            return self.started + self._next / self.rate

    def _send(self) -> None:
        sender = transport(self.base_url)
        while not self._stop.is_set():
            delay = self._slot() - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            self.record(ask(sender, self.shopper.purchase(), self.started))

    def record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def burst(self, count: int, *, fired: threading.Event) -> list[Answer]:
        """`count` requests at the same instant, on fresh connections (beside the paced
        traffic); `fired` is set as they leave, so a fault can land while they are in flight."""
        ready = [(transport(self.base_url), self.shopper.purchase()) for _ in range(count)]
        barrier = threading.Barrier(count, action=fired.set)

        def fire(sender: Transport, purchase: Purchase) -> Answer:
            barrier.wait()
            return ask(sender, purchase, self.started)

        with ThreadPoolExecutor(max_workers=count) as pool:
            answers = list(pool.map(fire, *zip(*ready, strict=True)))
        for answer in answers:
            self.record(answer)
        return answers

    def send(self, count: int, *, timeout: float = 300) -> list[Answer]:
        """Start, and stop once `count` requests have their answer (or no answer)."""
        self.start()
        wait_until(lambda: len(self.answers) >= count, timeout=timeout, what=f"{count} requests")
        return self.stop()

    def stop(self) -> list[Answer]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)
        return list(self.answers)

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if start <= a.at < end]


def summary(answers: Iterable[Answer]) -> dict[str, Any]:
    """The figures a report line shows: answered, in Marqeta's deadline, approvals, latency."""
    answers = list(answers)
    answered = [a for a in answers if a.status in (200, 402)]
    elapsed = [a.elapsed_ms for a in answered]
    return {
        "sent": len(answers),
        "answered": len(answered),
        "in_deadline": sum(a.elapsed_ms <= MARQETA_TIMEOUT_MS for a in answered),
        "approved": sum(a.approved for a in answers),
        "stand_in": sum(a.fallback for a in answered),
        "no_answer": sum(a.status is None for a in answers),
        "other_status": sum(a.status not in (200, 402, None) for a in answers),
        "p50_ms": round(percentile(elapsed, 50), 1) if elapsed else None,
        "p99_ms": round(percentile(elapsed, 99), 1) if elapsed else None,
    }


def answers_file(answers: Iterable[Answer], path: Path) -> Path:
    path.write_text(json.dumps([asdict(a) for a in answers]))
    return path


# --- what follows an authorization ------------------------------------------------------------


def clearing_event(shopper: Shopper, purchase: Purchase, *, percent: int) -> Event:
    """Marqeta's final clearing of `percent` % of the authorization (70: partial, the rest
    released; 115: a tip, the excess from available)."""
    auth = purchase.message
    amount = max(1, auth.amount_minor * percent // 100)
    released = max(0, auth.amount_minor - amount)
    message = shopper.tokens.message(
        type="authorization.clearing", method="pgfs.authorization.capture", amount_minor=amount,
        state="COMPLETION", preceding=auth.token, original_jit=auth.jit_token,
    )  # fmt: skip
    body = {"is_final_clearing": True}
    if released:
        body["amount_to_be_released"] = purchase.facts.money(released)
    return Event(
        token=message.token, type=message.type, body=body, label="clearing", in_file=True,
        user_token=purchase.facts.card.user_token, facts=purchase.facts, message=message,
    )  # fmt: skip


def clearing_file(shopper: Shopper, purchases: list[Purchase], *, inbox: Path) -> ClearingFile:
    """The day's file for `purchases`: mostly exact clearings, some partial, some over."""
    events = [
        clearing_event(shopper, purchase, percent=(100, 100, 100, 70, 115)[number % 5])
        for number, purchase in enumerate(purchases)
    ]
    return write_clearing_file(
        events, inbox=inbox, program=population.PROGRAM,
        settlement_date=datetime.now(UTC).date(), currency_code=population.CURRENCY,
    )  # fmt: skip


def report_timeouts(base_url: str, purchases: list[Purchase]) -> list[int]:
    """Marqeta's authorization webhooks for requests it got no answer to: declined (timed out),
    so the platform releases anything it held for them. The HTTP status of each POST."""
    timed_out = payloads.GatewayOutcome(
        duration_ms=MARQETA_TIMEOUT_MS, timed_out=True, status=None, response=None
    )
    sender = transport(base_url)
    statuses = []
    for purchase in purchases:
        event = payloads.authorization_event(
            purchase.facts,
            purchase.message,
            outcome=payloads.MarqetaOutcome(approved=False),
            gateway=timed_out,
        )
        statuses.append(sender.webhook(payloads.envelope([event]))[0])
    return statuses
