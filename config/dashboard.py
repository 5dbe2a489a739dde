"""`/admin/dashboard/`: how the gateway did over the last hour, for ops.

Approval rate, decline reasons, stand-in (fallback) answers, decision latency (p50/p99 by
PostgreSQL's `percentile_cont`), the outbox lag and the open exceptions, with small bar charts
drawn as SVG on the server (no JavaScript, nothing from a CDN). A fixed handful of queries.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Aggregate, Count, FloatField, Max, Q
from django.db.models.functions import TruncMinute
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from cards.models import Program
from config.admin_mixins import admin_page_context, in_timezone, is_ops
from jit import fallback
from jit.models import JitDecision
from jit.outbox import outbox_lag
from jit.reasons import in_words
from jit.redis_client import maintenance_redis
from reconciliation.models import ReconciliationException

WINDOW = timedelta(hours=1)
BUCKET_MINUTES = 5
TOP_REASONS = 8
APPROVED, DECLINED = JitDecision.Outcome.APPROVED, JitDecision.Outcome.DECLINED


class Percentile(Aggregate):
    """`percentile_cont(<fraction>) WITHIN GROUP (ORDER BY <expression>)`."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("a percentile is a fraction between 0 and 1")
        super().__init__(expression, fraction=repr(fraction), **extra)


# --- the numbers ------------------------------------------------------------------------------


def decision_summary(since: datetime) -> dict[str, Any]:
    """Counts, approval rate, stand-in answers and latency percentiles: one query."""
    summary = JitDecision.objects.filter(decided_at__gte=since).aggregate(
        total=Count("pk"),
        approved=Count("pk", filter=Q(outcome=APPROVED)),
        declined=Count("pk", filter=Q(outcome=DECLINED)),
        fallback_approved=Count("pk", filter=Q(is_fallback=True, outcome=APPROVED)),
        fallback_declined=Count("pk", filter=Q(is_fallback=True, outcome=DECLINED)),
        p50_us=Percentile("latency_us", fraction=0.5),
        p99_us=Percentile("latency_us", fraction=0.99),
        max_us=Max("latency_us"),
    )
    total = summary["total"]
    summary["approval_rate"] = f"{100 * summary['approved'] / total:.1f} %" if total else "-"
    for name in ("p50", "p99", "max"):
        micros = summary[f"{name}_us"]
        summary[f"{name}_ms"] = "-" if micros is None else f"{micros / 1000:.2f} ms"
    return summary


def decline_reasons(since: datetime, *, top: int = TOP_REASONS) -> list[dict[str, Any]]:
    rows = (
        JitDecision.objects.filter(decided_at__gte=since, outcome=DECLINED)
        .values("reason_code", "decline_reason")
        .annotate(count=Count("pk"))
        .order_by("-count", "reason_code")[:top]
    )
    return [
        {**row, "words": in_words(reason_code=row["reason_code"]), "label": row["reason_code"]}
        for row in rows
    ]


def decisions_by_bucket(since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Approved and declined per `BUCKET_MINUTES` over the window, oldest first."""
    per_minute = (
        JitDecision.objects.filter(decided_at__gte=since)
        .annotate(minute=TruncMinute("decided_at"))
        .values("minute", "outcome")
        .annotate(count=Count("pk"))
    )
    bucket_seconds = BUCKET_MINUTES * 60
    buckets = int(WINDOW.total_seconds()) // bucket_seconds
    counts: Counter[tuple[int, str]] = Counter()
    for row in per_minute:
        age = int((now - row["minute"]).total_seconds()) // bucket_seconds
        counts[(min(max(age, 0), buckets - 1), row["outcome"])] += row["count"]
    return [
        {
            "start": now - timedelta(seconds=(age + 1) * bucket_seconds),
            "approved": counts[(age, APPROVED)],
            "declined": counts[(age, DECLINED)],
        }
        for age in reversed(range(buckets))
    ]


def open_exceptions_by_kind() -> list[dict[str, Any]]:
    open_states = [ReconciliationException.State.OPEN, ReconciliationException.State.IN_PROGRESS]
    rows = (
        ReconciliationException.objects.filter(state__in=open_states)
        .values("kind")
        .annotate(count=Count("pk"))
        .order_by("-count", "kind")
    )
    return [{**row, "label": row["kind"]} for row in rows]


def current_outbox_lag() -> int | None:
    """Decision events not yet written to PostgreSQL; None when Redis does not answer."""
    try:
        return outbox_lag(maintenance_redis())
    except redis.RedisError:
        return None


# --- the charts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    css_class: str
    title: str


def stacked_columns(buckets: list[dict[str, Any]], *, tz_name: str) -> dict[str, Any]:
    """Approved (bottom) and declined (top) per bucket, as SVG rectangles and labels."""
    width, height, gap = 600, 160, 4
    column = width // max(len(buckets), 1)
    tallest = max((b["approved"] + b["declined"] for b in buckets), default=0) or 1
    bars, labels = [], []
    for index, bucket in enumerate(buckets):
        x = index * column + gap // 2
        approved_h = round(height * bucket["approved"] / tallest)
        declined_h = round(height * bucket["declined"] / tallest)
        when = in_timezone(bucket["start"], tz_name)[11:16]
        tip = f"from {when}: {bucket['approved']} approved, {bucket['declined']} declined"
        bars.append(Bar(x, height - approved_h, column - gap, approved_h, "approved", tip))
        bars.append(
            Bar(x, height - approved_h - declined_h, column - gap, declined_h, "declined", tip)
        )
        if index % 2 == 0:
            labels.append({"x": x, "text": when})
    return {
        "width": width,
        "height": height + 20,
        "plot_height": height,
        "bars": bars,
        "labels": labels,
        "tallest": tallest,
    }


def horizontal_bars(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One bar per row (`label`, `count`), longest first, with the count at its end."""
    width, row_height, label_width = 600, 22, 230
    longest = max((row["count"] for row in rows), default=0) or 1
    bars = [
        {
            "y": index * row_height,
            "label": row["label"],
            "count": row["count"],
            "length": max(round((width - label_width - 60) * row["count"] / longest), 1),
        }
        for index, row in enumerate(rows)
    ]
    return {
        "width": width,
        "height": max(len(rows) * row_height, row_height),
        "label_width": label_width,
        "bars": bars,
    }


# --- the page ---------------------------------------------------------------------------------


def _timezone_name() -> str:
    """The gateway's program's timezone (one program per deployment), else UTC."""
    program = Program.objects.order_by("pk").only("timezone").first()
    return program.timezone if program else "UTC"


@require_safe
def dashboard_view(request: HttpRequest) -> TemplateResponse:
    """Ops and superusers only: support reads card histories, not the gateway's health."""
    if not is_ops(request.user):
        raise PermissionDenied
    now = timezone.now()
    since = now - WINDOW
    tz_name = _timezone_name()
    summary = decision_summary(since)
    reasons = decline_reasons(since)
    exceptions = open_exceptions_by_kind()
    breaker = fallback.breaker()
    context = admin_page_context(
        request,
        title="Gateway dashboard",
        window_minutes=int(WINDOW.total_seconds() // 60),
        since=in_timezone(since, tz_name),
        now=in_timezone(now, tz_name),
        tz_name=tz_name,
        summary=summary,
        reasons=reasons,
        reasons_chart=horizontal_bars(reasons),
        volume_chart=stacked_columns(decisions_by_bucket(since, now), tz_name=tz_name),
        bucket_minutes=BUCKET_MINUTES,
        outbox_lag=current_outbox_lag(),
        exceptions=exceptions,
        exceptions_total=sum(row["count"] for row in exceptions),
        exceptions_chart=horizontal_bars(exceptions),
        breaker_state=breaker.state,
    )
    return TemplateResponse(request, "admin/dashboard.html", context)


def admin_index(request: HttpRequest) -> TemplateResponse:
    """The admin's home page, with the dashboard link for those who may open it."""
    return admin.site.index(request, extra_context={"ops_dashboard": is_ops(request.user)})
