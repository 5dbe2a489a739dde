"""Uptime is approval rate: a circuit breaker around Redis and a stand-in policy.

When Redis cannot answer in time the gateway still answers, from the fallback policy ops keep
in the admin: DECLINE_ALL (fraud-first) or APPROVE_UP_TO a per-transaction and per-card-per-
day limit for allowed MCCs (availability-first). Every stand-in answer is appended to a local
spool file first (it works with PostgreSQL and Redis both down) and replayed into the ledger by
`manage.py replay_standin_spool` (also a periodic task), flagged for review.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from jit.marqeta import JitRequest
from jit.methods import Op, is_advice
from jit.metrics import BREAKER_OPEN
from jit.redis_client import set_gateway_timeout_ms

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class StandInPolicy:
    """A snapshot of the program's fallback policy, held in memory by each web process."""

    mode: str = "DECLINE_ALL"
    max_transaction_minor: int = 0
    max_daily_per_card_minor: int = 0
    allowed_mccs: tuple[str, ...] = ()
    deadline_ms: int = 250
    failure_threshold: int = 5
    reset_seconds: float = 10.0
    redis_timeout_ms: int | None = None  # None: the JIT_REDIS_TIMEOUT_MS setting


class CircuitBreaker:
    """Open after `threshold` consecutive failures; after `reset_seconds` let one probe through."""

    def __init__(self, *, threshold: int, reset_seconds: float) -> None:
        self.threshold, self.reset_seconds = threshold, reset_seconds
        self.state, self.failures, self.opened_at = CLOSED, 0, 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            if self.state == OPEN and time.monotonic() - self.opened_at >= self.reset_seconds:
                self.state = HALF_OPEN  # one probe goes to Redis
                return True
            return self.state == CLOSED

    def record_success(self) -> None:
        with self._lock:
            if self.state != CLOSED or self.failures:
                self.state, self.failures = CLOSED, 0
                BREAKER_OPEN.set(0)

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == HALF_OPEN or self.failures >= self.threshold:
                self.state, self.opened_at = OPEN, time.monotonic()
                BREAKER_OPEN.set(1)


@dataclass
class StandInLedger:
    """Per-process memory of stand-in answers: daily use per card, and answers by token."""

    used: dict[tuple[str, str], int] = field(default_factory=dict)
    answers: OrderedDict[str, tuple[bool, str]] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, token: str, answer: tuple[bool, str]) -> None:
        self.answers[token] = answer
        while len(self.answers) > 100_000:
            self.answers.popitem(last=False)


_policy = StandInPolicy()
_breaker = CircuitBreaker(threshold=_policy.failure_threshold, reset_seconds=_policy.reset_seconds)
_memory = StandInLedger()


def current_policy() -> StandInPolicy:
    return _policy


def breaker() -> CircuitBreaker:
    return _breaker


def install_policy(policy: StandInPolicy) -> None:
    """Swap in a new policy (the refresher thread, tests); the breaker keeps its state."""
    global _policy
    _policy = policy
    _breaker.threshold, _breaker.reset_seconds = policy.failure_threshold, policy.reset_seconds
    set_gateway_timeout_ms(policy.redis_timeout_ms)


def stand_in_decision(jit_request: JitRequest) -> tuple[bool, str]:
    """(approved, our reason code) from the policy alone: no Redis, no database."""
    with _memory.lock:
        if replay := _memory.answers.get(jit_request.jit_token):
            return replay
        answer = _decide_locally(jit_request, _policy)
        _memory.remember(jit_request.jit_token, answer)
        return answer


def _decide_locally(jit_request: JitRequest, policy: StandInPolicy) -> tuple[bool, str]:
    if is_advice(jit_request.op):
        return True, "FALLBACK_ADVICE_ACCEPTED"
    if jit_request.op != Op.AUTH or policy.mode != "APPROVE_UP_TO":
        return False, "FALLBACK_DECLINE_ALL"
    if jit_request.amount_minor > policy.max_transaction_minor:
        return False, "FALLBACK_OVER_TRANSACTION_LIMIT"
    if policy.allowed_mccs and jit_request.mcc not in policy.allowed_mccs:
        return False, "FALLBACK_MCC_NOT_ALLOWED"
    day = datetime.now(UTC).date().isoformat()
    used = _memory.used.get((jit_request.card_token, day), 0)
    if used + jit_request.amount_minor > policy.max_daily_per_card_minor:
        return False, "FALLBACK_OVER_DAILY_LIMIT"
    _memory.used[(jit_request.card_token, day)] = used + jit_request.amount_minor
    return True, "FALLBACK_APPROVED"


def spool_stand_in(
    jit_request: JitRequest, *, approved: bool, reason_code: str, received_at_us: int
) -> None:
    """Append the stand-in answer to the spool (fsynced: an approval is already promised).

    Each line is the event the decision script would have written, so the replay applies it
    with the same code as the outbox.
    """
    from jit.cache import event_metadata

    decided_us = time.time_ns() // 1_000
    record = {
        "fields": {
            "jit": jit_request.jit_token,
            "op": str(jit_request.op),
            "outcome": "approved" if approved else "declined",
            "amount": str(jit_request.amount_minor),
            "decline": "" if approved else "INSUFFICIENT_FUNDS",
            "reason": reason_code,
            "decided_us": str(decided_us),
        },
        "meta": event_metadata(jit_request, received_at_us),
        "policy": asdict(_policy),
    }
    path = Path(settings.JIT_STANDIN_SPOOL)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(descriptor, line)  # one write with O_APPEND: lines never interleave
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def forget_stand_ins() -> None:
    """Clear this process's stand-in memory (a new day in tests; never needed in production)."""
    with _memory.lock:
        _memory.used.clear()
        _memory.answers.clear()


def load_policy() -> StandInPolicy:
    """The first program's fallback policy from PostgreSQL (the gateway serves one program)."""
    from cards.models import FallbackPolicy

    row = FallbackPolicy.objects.order_by("program_id").first()
    if row is None:
        return StandInPolicy()
    return StandInPolicy(
        mode=row.mode,
        max_transaction_minor=row.standin_max_transaction_minor,
        max_daily_per_card_minor=row.standin_max_daily_per_card_minor,
        allowed_mccs=tuple(row.standin_allowed_mccs),
        deadline_ms=row.deadline_ms,
        failure_threshold=row.breaker_failure_threshold,
        reset_seconds=row.breaker_reset_seconds,
        redis_timeout_ms=row.redis_timeout_ms,
    )


_refresher_lock = threading.Lock()
_refresher: threading.Thread | None = None


def _refresh_forever(interval: float) -> None:
    from django.db import connection

    while True:
        try:
            install_policy(load_policy())
        except Exception:  # noqa: BLE001 - keep the last policy when PostgreSQL is away
            logging.getLogger("jit").warning("fallback policy refresh failed", exc_info=True)
        finally:
            connection.close()
        time.sleep(interval)


def ensure_policy_refresher() -> None:
    """Start (once per process) the thread that keeps the policy snapshot fresh, off the hot
    path: the decision itself never reads the database."""
    global _refresher
    interval = settings.JIT_POLICY_REFRESH_SECONDS
    if _refresher is not None or interval <= 0:
        return
    with _refresher_lock:
        if _refresher is None:
            _refresher = threading.Thread(
                target=_refresh_forever, args=(interval,), name="fallback-policy", daemon=True
            )
            _refresher.start()
