"""Compile a card's configuration into the record the JIT gateway keeps in Redis.

Reads only. The Lua script decides from these dicts without touching the database, so their
keys are a contract with `jit/lua/`: add keys freely, never rename or drop one without
bumping `CONTROLS_VERSION`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from cards.models import Card, Channel, FraudRule, MccGroup, Program, SpendControl, VelocityLimit
from cards.selectors import (
    fallback_policy_for,
    fraud_rules_in_force,
    spend_controls_for,
    velocity_limits_for,
)

CONTROLS_VERSION = 1
SECOND = timedelta(seconds=1)


def effective_controls(*, card: Card) -> dict[str, Any]:
    """The strictest combination of the program's, cardholder's and card's controls."""
    return compile_controls(
        spend_controls=spend_controls_for(card=card),
        velocity_limits=velocity_limits_for(card=card),
    )


def compile_controls(
    *, spend_controls: Sequence[SpendControl], velocity_limits: Iterable[VelocityLimit]
) -> dict[str, Any]:
    """Strictest wins: the lowest max, the intersection of allow lists, the union of blocks.

    `mcc_allow` and `channels` are None when no scope restricts them; an empty list means the
    scopes' lists have nothing in common, so nothing is allowed.
    """
    allow_lists = [
        allowed
        for control in spend_controls
        if (allowed := _mccs(control.mcc_allow, control.mcc_groups_allow.all()))
    ]
    channel_lists = [set(c.allowed_channels) for c in spend_controls if c.allowed_channels]
    return {
        "v": CONTROLS_VERSION,
        "max_txn": min(
            (c.max_transaction_minor for c in spend_controls if c.max_transaction_minor),
            default=None,  # the lowest max; zero is never stored (a constraint)
        ),
        "mcc_allow": sorted(set.intersection(*allow_lists)) if allow_lists else None,
        "mcc_block": sorted(
            set().union(*(_mccs(c.mcc_block, c.mcc_groups_block.all()) for c in spend_controls))
        ),
        "country_block": sorted(set().union(*(c.blocked_countries for c in spend_controls))),
        "channels": [
            channel
            for channel in Channel.values
            if all(channel in allowed for allowed in channel_lists)
        ]
        if channel_lists
        else None,
        "limits": sorted(
            (limit_entry(limit) for limit in velocity_limits), key=lambda entry: entry["id"]
        ),
    }


def _mccs(mccs: Iterable[str], groups: Iterable[MccGroup]) -> set[str]:
    return set(mccs).union(*(group.mccs for group in groups))


def limit_entry(limit: VelocityLimit) -> dict[str, Any]:
    return {
        "id": limit.key,
        "scope": limit.scope,
        "counter": limit.counter,
        "window": limit.window,
        "max_amount": limit.max_amount_minor,
        "max_count": limit.max_count,
    }


def fraud_rules(*, program: Program) -> list[dict[str, Any]]:
    """The program's rules that are on or in shadow mode (shadow never declines)."""
    return [fraud_rule_entry(rule) for rule in fraud_rules_in_force(program=program)]


def fraud_rule_entry(rule: FraudRule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "name": rule.name,
        "kind": rule.kind,
        "mode": rule.mode,
        "action": rule.action,
        "params": rule.params,
    }


def timezone_table(*, tz_name: str, around: datetime) -> list[list[int]]:
    """The zone's UTC offset periods as [[start_utc_seconds, utc_offset_seconds], ...].

    Covers a year before `around` to two years after: the first period starts at midnight UTC
    at least 366 days before `around` (the offset in force then), each later one at a
    transition. Lua finds the last start <= now and adds its offset to get local time.
    The table is the same for every `around` on one UTC day, so it is computed once a day.
    """
    if around.tzinfo is None:
        raise ValueError("around must be an aware datetime")
    return [list(period) for period in _timezone_table(tz_name, around.astimezone(UTC).date())]


@lru_cache(maxsize=64)
def _timezone_table(tz_name: str, day: date) -> tuple[tuple[int, int], ...]:
    zone = ZoneInfo(tz_name)

    def offset(at: int) -> int:
        return datetime.fromtimestamp(at, zone).utcoffset() // SECOND

    def epoch(of: date) -> int:
        return int(datetime.combine(of, time(), tzinfo=UTC).timestamp())

    start, end = epoch(day - timedelta(days=366)), epoch(day + timedelta(days=2 * 366 + 1))
    periods = [(start, offset(start))]
    scanned, step = start, 86_400  # no zone changes its offset twice within a day
    while scanned < end:
        ahead = min(scanned + step, end)
        current = periods[-1][1]
        if offset(ahead) == current:
            scanned = ahead
            continue
        before, after = scanned, ahead  # offset(before) == current != offset(after)
        while after - before > 1:
            middle = (before + after) // 2
            before, after = (middle, after) if offset(middle) == current else (before, middle)
        periods.append((after, offset(after)))
        scanned = after
    return tuple(periods)


def card_cache_record(*, card: Card, now: datetime | None = None) -> dict[str, str]:
    """The card's Redis hash: every value a string, JSON ones compact with sorted keys."""
    cardholder = card.cardholder
    program = cardholder.program
    policy = fallback_policy_for(program=program)
    fallback = {
        "mode": policy.mode,
        "max_txn": policy.standin_max_transaction_minor,
        "max_daily": policy.standin_max_daily_per_card_minor,
        "mccs": sorted(policy.standin_allowed_mccs),
    }
    return {
        "state": card.state,
        "user": cardholder.token,
        "holder_status": cardholder.status,
        "currency": program.currency_code,
        "controls": compact_json(effective_controls(card=card)),
        "fraud": compact_json(fraud_rules(program=program)),
        "tz": compact_json(timezone_table(tz_name=program.timezone, around=now or timezone.now())),
        "fallback": compact_json(fallback),
    }


def compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
