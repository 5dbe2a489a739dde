"""Admin pages and panels that read across apps: the card history, the effective-controls
preview, fraud rule hit counts and the fallback breaker of this process.

The model admins call these; nothing here writes. Money is shown in the program's currency
and times in the program's timezone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import asdict
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Count, Q, Value
from django.db.models.functions import Concat
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.timesince import timeuntil
from django.views.decorators.http import require_safe

from cards.controls import compile_controls, effective_controls
from cards.models import Card, Cardholder, Program, SpendControl, VelocityLimit
from config.admin_mixins import admin_page_context, in_timezone
from jit import fallback
from jit.history import HistoryEntry, card_history
from jit.models import JitDecision
from jit.selectors import live_balances, remaining_limits_now
from ledger.money import format_money

HISTORY_LIMIT = 500  # rows of the card history page, newest first
RULE_HITS_WINDOW = timedelta(hours=24)


def _money(amount_minor: int | None, currency: str, *, none: str = "-") -> str:
    return none if amount_minor is None else format_money(amount_minor, currency)


# --- the card history page ---------------------------------------------------------------------


def _hold_words(hold: dict[str, Any] | None, currency: str, tz_name: str, now: datetime) -> str:
    """ "open, 12.34 USD held; drops off 2026-05-08 14:03 EDT (in 6 days)" and the like."""
    if hold is None:
        return ""
    if hold["status"] == "open":
        expires = hold["expires_at"]
        words = (
            f"open, {_money(hold['remaining_minor'], currency)} held; drops off "
            f"{in_timezone(expires, tz_name)} (in {timeuntil(expires, now)})"
        )
    elif hold["status"] == "expired":
        words = "expired (dropped off, money back to available)"
    else:
        words = "closed (cleared or reversed)"
    return f"{words}; approved by the stand-in policy" if hold["is_standin"] else words


def history_row(entry: HistoryEntry, *, currency: str, tz_name: str, now: datetime) -> dict:
    decision = entry.decision or {}
    return {
        "at": in_timezone(entry.at, tz_name),
        "kind": entry.kind,
        "description": entry.description,
        "amount": _money(entry.amount_minor, currency),
        "available_after": _money(entry.available_after_minor, currency),
        "explanation": decision.get("explanation", ""),
        "marqeta_reason": decision.get("decline_reason", ""),
        "is_decline": decision.get("outcome") == JitDecision.Outcome.DECLINED,
        "is_fallback": decision.get("is_fallback", False),
        "hold": _hold_words(entry.hold, currency, tz_name, now),
        "reference": entry.reference,
    }


def _next_window_start(window: str, tz_name: str, now: datetime) -> datetime | None:
    """When a calendar limit's window starts again (its counters reset), local midnight."""
    zone = ZoneInfo(tz_name)
    today = now.astimezone(zone).date()
    starts: dict[str, date] = {
        "day": today + timedelta(days=1),
        "week": today + timedelta(days=7 - today.weekday()),
        "month": date(today.year + today.month // 12, today.month % 12 + 1, 1),
    }
    if window not in starts:
        return None  # lifetime
    return datetime.combine(starts[window], clock.min, tzinfo=zone)


def limit_row(limit: dict[str, Any], *, currency: str, tz_name: str, now: datetime) -> dict:
    resets = _next_window_start(limit["window"], tz_name, now)
    return {
        "scope": limit["scope"],
        "window": limit["window"],
        "max_amount": _money(limit["max_amount"], currency, none="no maximum"),
        "used_amount": _money(limit["used_amount"], currency),
        "remaining_amount": _money(limit["remaining_amount"], currency, none="-"),
        "max_count": "no maximum" if limit["max_count"] is None else limit["max_count"],
        "used_count": limit["used_count"],
        "remaining_count": "-" if limit["remaining_count"] is None else limit["remaining_count"],
        "resets": "never" if resets is None else in_timezone(resets, tz_name),
    }


@require_safe
def card_history_page(request: HttpRequest, *, card_id: int) -> TemplateResponse:
    """`/admin/cards/card/<id>/history/`: what support reads when a cardholder calls."""
    if not request.user.has_perm("cards.view_card"):
        raise PermissionDenied
    card = get_object_or_404(Card.objects.select_related("cardholder__program"), pk=card_id)
    cardholder, program = card.cardholder, card.cardholder.program
    currency, tz_name, now = program.currency_code, program.timezone, timezone.now()
    entries = card_history(card=card, limit=HISTORY_LIMIT)
    live, source = live_balances(cardholder=cardholder)
    try:
        limits = [
            limit_row(limit, currency=currency, tz_name=tz_name, now=now)
            for limit in remaining_limits_now(card=card)
        ]
        limits_error = ""
    except redis.RedisError:
        limits, limits_error = [], "Redis is unreachable: the usage of each limit is unknown now."
    context = admin_page_context(
        request,
        title=f"History of card ****{card.last_four}",
        opts=Card._meta,
        card=card,
        cardholder=cardholder,
        program=program,
        available=_money(live.available_minor, currency),
        available_source=source,
        pending=_money(live.pending_minor, currency),
        rows=[history_row(e, currency=currency, tz_name=tz_name, now=now) for e in entries],
        truncated=len(entries) >= HISTORY_LIMIT,
        history_limit=HISTORY_LIMIT,
        limits=limits,
        limits_error=limits_error,
        now=in_timezone(now, tz_name),
    )
    return TemplateResponse(request, "admin/cards/card/history.html", context)


# --- effective controls preview ---------------------------------------------------------------


def _codes(values: Iterable[str] | None, *, none: str, empty: str) -> str:
    if values is None:
        return none
    return ", ".join(values) or empty


def _controls_html(controls: dict[str, Any], *, currency: str, scopes: str) -> SafeString:
    limits = [
        {
            "scope": limit["scope"],
            "window": limit["window"],
            "counts": "the cardholder's cards together"
            if limit["counter"] == "user"
            else "this card alone",
            "max_amount": _money(limit["max_amount"], currency, none="no maximum"),
            "max_count": "no maximum" if limit["max_count"] is None else limit["max_count"],
        }
        for limit in controls["limits"]
    ]
    rows = [
        ("max per transaction", _money(controls["max_txn"], currency, none="no maximum")),
        (
            "merchant categories allowed",
            _codes(controls["mcc_allow"], none="any", empty="none (the allow lists do not meet)"),
        ),
        ("merchant categories blocked", _codes(controls["mcc_block"], none="", empty="none")),
        ("merchant countries blocked", _codes(controls["country_block"], none="", empty="none")),
        ("channels allowed", _codes(controls["channels"], none="any", empty="none")),
    ]
    return render_to_string(
        "admin/cards/effective_controls.html", {"rows": rows, "limits": limits, "scopes": scopes}
    )


def card_controls_preview(card: Card) -> SafeString:
    """The strictest combination of the program's, cardholder's and card's controls, as the
    gateway applies them (the saved rows: save the page to see an edit here)."""
    return _controls_html(
        effective_controls(card=card),
        currency=card.cardholder.program.currency_code,
        scopes="program, cardholder and card",
    )


def cardholder_controls_preview(cardholder: Cardholder) -> SafeString:
    """What applies to a card of this cardholder before any control of the card's own."""
    scopes = Q(program_id=cardholder.program_id) | Q(cardholder_id=cardholder.pk)
    controls = compile_controls(
        spend_controls=list(
            SpendControl.objects.filter(scopes)
            .prefetch_related("mcc_groups_allow", "mcc_groups_block")
            .order_by("pk")
        ),
        velocity_limits=VelocityLimit.objects.filter(scopes, active=True).order_by("pk"),
    )
    return _controls_html(
        controls,
        currency=cardholder.program.currency_code,
        scopes="program and cardholder (a card's own controls add to these)",
    )


# --- fraud rules: what each would have declined ------------------------------------------------


def fraud_rule_hits(rule_ids: Iterable[int], *, since: datetime) -> dict[int, tuple[int, int]]:
    """{rule id: (hits, would-decline hits)} over the decisions since `since`, in one query.

    `JitDecision.rule_hits` is "<rule id>:<mode>:<action>,...": a leading comma makes
    ",<id>:" match that rule alone (rule 1 is not rule 11).
    """
    rule_ids = sorted(set(rule_ids))
    if not rule_ids:
        return {}
    aggregates = {}
    for pk in rule_ids:
        aggregates[f"hits_{pk}"] = Count("pk", filter=Q(hits__contains=f",{pk}:"))
        aggregates[f"declines_{pk}"] = Count(
            "pk",
            filter=Q(hits__contains=f",{pk}:on:decline")
            | Q(hits__contains=f",{pk}:shadow:decline"),
        )
    totals = (
        JitDecision.objects.filter(decided_at__gte=since)
        .exclude(rule_hits="")
        .annotate(hits=Concat(Value(","), "rule_hits", output_field=CharField()))
        .aggregate(**aggregates)
    )
    return {pk: (totals[f"hits_{pk}"], totals[f"declines_{pk}"]) for pk in rule_ids}


# --- the fallback breaker of this process ------------------------------------------------------


def breaker_panel(program: Program | None) -> SafeString:
    """The circuit breaker and policy snapshot of the web process that serves this page.

    Each gunicorn worker keeps its own breaker and its own copy of the policy, so another
    reload of the page may show another process.
    """
    breaker = fallback.breaker()
    policy = fallback.current_policy()
    program = program or Program.objects.order_by("pk").first()  # the gateway's program
    currency = program.currency_code if program else "USD"
    opened_ago = (
        round(time.monotonic() - breaker.opened_at) if breaker.state != fallback.CLOSED else None
    )
    snapshot = asdict(policy)
    for name in ("max_transaction_minor", "max_daily_per_card_minor"):
        snapshot[name] = _money(snapshot[name], currency)
    snapshot["allowed_mccs"] = ", ".join(policy.allowed_mccs) or "any"
    try:
        saved = fallback.load_policy()
    except Exception:  # noqa: BLE001 - a panel: say it, never break the page
        saved = None
    return render_to_string(
        "admin/cards/fallbackpolicy/breaker_state.html",
        {
            "pid": os.getpid(),
            "state": breaker.state,
            "failures": breaker.failures,
            "threshold": breaker.threshold,
            "reset_seconds": breaker.reset_seconds,
            "opened_ago": opened_ago,
            "snapshot": snapshot,
            "snapshot_is_current": saved == policy,
            "refresh_seconds": settings.JIT_POLICY_REFRESH_SECONDS,
        },
    )
