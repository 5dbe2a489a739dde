"""The JIT decision: parse, one Redis script (or the stand-in policy), answer in Marqeta's shape.

`decide_jit_funding` makes zero database queries and one Redis call. Declines are data, not
exceptions: they are recorded and replayed like approvals and go out as HTTP 402.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import simplejson

from jit import cache, fallback, metrics
from jit.marqeta import JitRequest
from jit.methods import Op, is_advice
from ledger.money import to_decimal

logger = logging.getLogger("jit")

DECLINE_FOR_OUTCOME = {
    "unknown_card": ("INVALID_CARD", "CARD_NOT_IN_CACHE"),
    "unknown_account": ("NO_CHECKING_ACCOUNT", "ACCOUNT_NOT_IN_CACHE"),
}


class IdempotencyConflict(Exception):
    """Same `jit_funding.token`, different request: refused, the first answer stands."""


@dataclass(frozen=True, slots=True)
class JitAnswer:
    """What we tell Marqeta, and what support will want to know about it."""

    approved: bool
    decline_reason: str  # Marqeta's enum, e.g. INSUFFICIENT_FUNDS ("" when approved)
    reason_code: str  # ours, e.g. VELOCITY_DAY_AMOUNT
    available_minor: int | None
    is_fallback: bool = False
    is_replay: bool = False

    @property
    def http_status(self) -> int:
        return 200 if self.approved else 402


def decide_jit_funding(jit_request: JitRequest, *, received_at_us: int) -> JitAnswer:
    """Decide from Redis; when Redis is slow, down or the breaker is open, from the policy."""
    fallback.ensure_policy_refresher()
    breaker = fallback.breaker()
    budget_us = fallback.current_policy().deadline_ms * 1000
    if now_us() - received_at_us > budget_us:  # already late: answer now, deterministically
        return _stand_in(jit_request, received_at_us)
    if breaker.allow():
        try:
            script = cache.run_decision(jit_request, received_at_us=received_at_us)
        except redis.TimeoutError:
            # the script may have run: its stored answer, if any, is the one to give
            breaker.record_failure()
            if (script := _answer_after_timeout(jit_request)) is not None:
                return _answer_from_script(jit_request, script)
        except (redis.RedisError, OSError) as error:
            breaker.record_failure()
            logger.warning(
                "jit %s: redis failed (%s), answering from fallback",
                jit_request.jit_token,
                error.__class__.__name__,
            )
        else:
            breaker.record_success()
            return _answer_from_script(jit_request, script)
    return _stand_in(jit_request, received_at_us)


def _answer_after_timeout(jit_request: JitRequest) -> cache.ScriptAnswer | None:
    try:
        return cache.stored_answer(jit_request)
    except (redis.RedisError, OSError):
        return None  # still unknown: the stand-in answers, the ledger writer reconciles


def _answer_from_script(jit_request: JitRequest, script: cache.ScriptAnswer) -> JitAnswer:
    if script.outcome == "conflict":
        raise IdempotencyConflict(jit_request.jit_token)
    if script.outcome in DECLINE_FOR_OUTCOME:
        decline_reason, reason_code = DECLINE_FOR_OUTCOME[script.outcome]
        logger.error(
            "jit %s: %s (user %s card %s)",
            jit_request.jit_token,
            reason_code,
            jit_request.user_token,
            jit_request.card_token,
        )
        if is_advice(jit_request.op):
            return JitAnswer(True, "", reason_code, None)  # never refuse an advice
        return JitAnswer(False, decline_reason, reason_code, None)
    approved = script.approved or is_advice(jit_request.op)
    return JitAnswer(
        approved=approved,
        decline_reason="" if approved else script.decline_reason,
        reason_code=script.reason_code,
        available_minor=script.available_minor,
        is_replay=script.outcome == "replay",
    )


def _stand_in(jit_request: JitRequest, received_at_us: int) -> JitAnswer:
    approved, reason_code = fallback.stand_in_decision(jit_request)
    fallback.spool_stand_in(
        jit_request, approved=approved, reason_code=reason_code, received_at_us=received_at_us
    )
    metrics.FALLBACK_ANSWERS.labels(outcome="approved" if approved else "declined").inc()
    decline_reason = "" if approved else "INSUFFICIENT_FUNDS"
    return JitAnswer(approved, decline_reason, reason_code, None, is_fallback=True)


def _balances(jit_request: JitRequest, available_minor: int) -> dict[str, Any]:
    currency = jit_request.currency_code
    amount = to_decimal(available_minor, currency)
    zero = to_decimal(0, currency)
    return {
        currency: {
            "currency_code": currency,
            "available_balance": amount,
            "ledger_balance": amount,
            "credit_balance": zero,
            "pending_credits": zero,
            "last_updated_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "balances": {},
        }
    }


def response_body(jit_request: JitRequest, answer: JitAnswer) -> bytes:
    """The `jit_funding` echo (amount unchanged, as a JSON number) plus our decision."""
    funding = dict(jit_request.jit_funding)
    funding.pop("decline_reason", None)
    funding.pop("balances", None)
    if not answer.approved:
        funding["decline_reason"] = answer.decline_reason
    elif jit_request.op == Op.INQUIRY and answer.available_minor is not None:
        funding["balances"] = _balances(jit_request, answer.available_minor)
    funding["tags"] = f"reason={answer.reason_code}" + ("&fallback=1" if answer.is_fallback else "")
    return simplejson.dumps({"jit_funding": funding}, use_decimal=True).encode()


def now_us() -> int:
    return time.time_ns() // 1000
