"""The Redis balance cache: the decision script, and the writes that keep the cache in step.

PostgreSQL is the truth; this cache is derived from it (`rebuild_balance_cache`). Every write
here is idempotent, so a retried push or a replayed event never moves a balance twice.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import redis
import simplejson
from django.conf import settings
from redis.commands.core import Script

from jit import keys
from jit.marqeta import JitRequest
from jit.redis_client import gateway_redis, maintenance_redis

LUA = Path(__file__).resolve().parent / "lua"

APPLY_DELTA = """
-- KEYS: 1 account, 2 applied marker, 3 the gateway's own hold record for this posting (if
-- it exists, the decision script already moved the balance). ARGV: 1 delta, 2 ttl seconds.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[3]) == 1 then return false end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[2])) == false then return false end
return redis.call('HINCRBY', KEYS[1], 'available', tonumber(ARGV[1]))
"""
GATEWAY_HOLD_PREFIX = "hold:jit:"  # ledger keys of holds the decision script placed


@dataclass(frozen=True, slots=True)
class ScriptAnswer:
    """What the decision script said."""

    outcome: str  # approved | declined | replay | conflict | unknown_card | unknown_account
    decline_reason: str
    reason_code: str
    available_minor: int | None
    rule_hits: str
    extra: str

    @property
    def approved(self) -> bool:
        return self.outcome == "approved" or (self.outcome == "replay" and not self.decline_reason)


@functools.cache
def _script(name: str) -> Script:
    return gateway_redis().register_script((LUA / f"{name}.lua").read_text())


@functools.cache
def _apply_delta_script() -> Script:
    return maintenance_redis().register_script(APPLY_DELTA)


def reset_scripts() -> None:
    _script.cache_clear()
    _apply_delta_script.cache_clear()


def fingerprint(jit_request: JitRequest) -> str:
    """What makes two messages with one token the same request."""
    return fingerprint_of(
        method=jit_request.method,
        user_token=jit_request.user_token,
        card_token=jit_request.card_token,
        amount_minor=jit_request.amount_minor,
        currency_code=jit_request.currency_code,
    )


def fingerprint_of(
    *, method: str, user_token: str, card_token: str, amount_minor: int, currency_code: str
) -> str:
    """`fingerprint` from stored fields (a rebuild restores the idempotency records)."""
    parts = (method, user_token, card_token, str(amount_minor), currency_code)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def stored_answer_record(
    *,
    fingerprint: str,
    decline_reason: str,
    reason_code: str,
    available_minor: int | None,
    rule_hits: str,
) -> str:
    """The idempotency record as decide.lua writes it (a rebuild writes it back)."""
    return simplejson.dumps(
        {
            "fp": fingerprint,
            "dr": decline_reason,
            "rc": reason_code,
            "av": available_minor if available_minor is not None else "",
            "rh": rule_hits,
            "x": "",
        }
    )


def advice_ledger_key(jit_request: JitRequest) -> str:
    """The ledger idempotency key the advice will post under (webhooks reuse it)."""
    token = jit_request.transaction_token or jit_request.jit_token
    namespace = {"release": "release", "clear": "clearing", "force": "clearing"}
    return f"{namespace.get(jit_request.op, 'refund')}:{token}"


def _decision_keys(jit_request: JitRequest) -> list[str]:
    user, card = jit_request.user_token, jit_request.card_token or "-"
    root = jit_request.original_jit_token or jit_request.jit_token
    return [
        keys.account_key(user),
        keys.card_key(user, card),
        keys.idempotency_key(user, jit_request.jit_token),
        keys.hold_key(user, jit_request.jit_token),
        keys.hold_key(user, root),
        keys.user_velocity_key(user),
        keys.card_velocity_key(user, card),
        keys.burst_key(user, card),
        keys.stats_key(user, card),
        keys.outbox_key(keys.partition(user)),
        keys.applied_key(user, advice_ledger_key(jit_request)),
    ]


def event_metadata(jit_request: JitRequest, received_at_us: int) -> str:
    return simplejson.dumps(
        {
            "method": jit_request.method,
            "user": jit_request.user_token,
            "card": jit_request.card_token,
            "txn": jit_request.transaction_token,
            "original": jit_request.original_jit_token,
            "currency": jit_request.currency_code,
            "mcc": jit_request.mcc,
            "merchant": jit_request.merchant_name,
            "country": jit_request.country,
            "channel": jit_request.channel,
            "final": jit_request.is_final,
            "capture": jit_request.captured_at_once,
            "received_us": received_at_us,
        },
        separators=(",", ":"),
    )


def run_decision(jit_request: JitRequest, *, received_at_us: int) -> ScriptAnswer:
    """One EVALSHA: idempotency, controls, fraud, balance, hold, velocity, outbox event."""
    args = [
        jit_request.jit_token,
        fingerprint(jit_request),
        jit_request.op,
        jit_request.amount_minor,
        jit_request.signals,
        jit_request.mcc,
        jit_request.country,
        jit_request.channel,
        jit_request.currency_code,
        settings.JIT_IDEMPOTENCY_TTL_SECONDS,
        "1" if jit_request.is_final else "0",
        event_metadata(jit_request, received_at_us),
        jit_request.deny_reason,
    ]
    outcome, decline, reason, available, hits, extra = _script("decide")(
        keys=_decision_keys(jit_request), args=args, client=gateway_redis()
    )  # the client of the timeout in force (the script object was made with the first one)
    return ScriptAnswer(
        outcome=outcome,
        decline_reason=decline,
        reason_code=reason,
        available_minor=int(available) if available not in ("", None) else None,
        rule_hits=hits,
        extra=extra,
    )


# --- keeping the cache in step with the ledger ---------------------------------------------


def put_account(*, user_token: str, available_minor: int, currency_code: str) -> None:
    """Set a cardholder's cached available balance (rebuild, new account)."""
    maintenance_redis().hset(
        keys.account_key(user_token),
        mapping={"available": available_minor, "currency": currency_code},
    )


def put_card(*, user_token: str, card_token: str, record: dict[str, str]) -> None:
    """Replace a card's cached record (state, controls, fraud rules, timezone table)."""
    key = keys.card_key(user_token, card_token)
    client = maintenance_redis()
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping=record)
    pipe.execute()


@dataclass(frozen=True, slots=True)
class AvailableMove:
    """A ledger posting's move of one cardholder's cached available balance."""

    user_token: str
    ledger_key: str
    delta_minor: int

    @property
    def applied_key(self) -> str:
        return keys.applied_key(self.user_token, self.ledger_key)

    def script_keys(self) -> list[str]:
        if self.ledger_key.startswith(GATEWAY_HOLD_PREFIX):  # a stand-in for a token we approved
            own_hold = keys.hold_key(
                self.user_token, self.ledger_key.removeprefix(GATEWAY_HOLD_PREFIX)
            )
        else:
            own_hold = keys.applied_key(self.user_token, f"unused:{self.ledger_key}")  # never set
        return [keys.account_key(self.user_token), self.applied_key, own_hold]


def apply_available_delta(*, user_token: str, ledger_key: str, delta_minor: int) -> int | None:
    """Move the cached available balance once per ledger posting; None if not applied."""
    move = AvailableMove(user_token=user_token, ledger_key=ledger_key, delta_minor=delta_minor)
    result = _apply_delta_script()(
        keys=move.script_keys(), args=[delta_minor, settings.JIT_IDEMPOTENCY_TTL_SECONDS]
    )
    return int(result) if result is not None else None


def apply_available_moves(moves: list[AvailableMove]) -> None:
    """Many moves (a clearing batch) in one pipelined round trip; each applies at most once.

    A Redis Cluster client gets them one by one: a cluster pipeline runs no scripts.
    """
    client = maintenance_redis()
    if not isinstance(client, redis.Redis):
        for move in moves:
            apply_available_delta(
                user_token=move.user_token, ledger_key=move.ledger_key, delta_minor=move.delta_minor
            )
        return
    script, ttl = _apply_delta_script(), settings.JIT_IDEMPOTENCY_TTL_SECONDS
    pipe = client.pipeline(transaction=False)
    for move in moves:
        script(keys=move.script_keys(), args=[move.delta_minor, ttl], client=pipe)
    pipe.execute()


def mark_moves_applied(moves: list[AvailableMove]) -> None:
    """Set the applied marker of each move without moving a balance (the cache rebuild has
    written balances that already include them)."""
    client = maintenance_redis()
    ttl = settings.JIT_IDEMPOTENCY_TTL_SECONDS
    for start in range(0, len(moves), 2_000):
        pipe = client.pipeline(transaction=False)
        for move in moves[start : start + 2_000]:
            pipe.set(move.applied_key, "1", nx=True, ex=ttl)
        pipe.execute()


def cached_available(*, user_token: str) -> int | None:
    value = maintenance_redis().hget(keys.account_key(user_token), "available")
    return int(value) if value is not None else None


def card_usage(*, user_token: str, card_token: str) -> dict[str, dict[str, str]]:
    """The raw velocity counters of a card and its cardholder (for support's remaining view)."""
    client = maintenance_redis()
    return {
        "user": client.hgetall(keys.user_velocity_key(user_token)),
        "card": client.hgetall(keys.card_velocity_key(user_token, card_token)),
    }


def ensure_account(*, user_token: str, currency_code: str) -> None:
    """A new wallet starts at zero in the cache (never overwrites an existing balance)."""
    client = maintenance_redis()
    key = keys.account_key(user_token)
    client.hsetnx(key, "available", 0)
    client.hsetnx(key, "currency", currency_code)


def load_scripts() -> None:
    """Load the decision script into Redis ahead of traffic, so no request pays SCRIPT LOAD."""
    script = _script("decide")
    gateway_redis().script_load(script.script)


def stored_answer(jit_request: JitRequest) -> ScriptAnswer | None:
    """The answer the script stored for this token, if it ran (a timed-out call may have)."""
    stored = gateway_redis().get(
        keys.idempotency_key(jit_request.user_token, jit_request.jit_token)
    )
    if stored is None:
        return None
    first = simplejson.loads(stored)
    if first.get("fp") != fingerprint(jit_request):
        return ScriptAnswer("conflict", "", "IDEMPOTENCY_CONFLICT", None, "", "")
    return ScriptAnswer(
        outcome="replay",
        decline_reason=first.get("dr", ""),
        reason_code=first.get("rc", ""),
        available_minor=int(first["av"]) if first.get("av") not in ("", None) else None,
        rule_hits=first.get("rh", ""),
        extra=first.get("x", ""),
    )
