"""Liveness and readiness probes for the load balancer and `make run`."""

from __future__ import annotations

import os

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_redis import get_redis_connection
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess


def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: the process answers. Touches no dependency, so it never flaps with them."""
    return JsonResponse({"status": "ok"})


def _postgres_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


def _redis_ok() -> bool:
    try:
        return bool(get_redis_connection("default").ping())
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready: PostgreSQL and Redis both answer. 503 otherwise, naming what is down."""
    checks = {"postgres": _postgres_ok(), "redis": _redis_ok()}
    ready = all(checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics: decision latency, outcomes, fallback answers, breaker, outbox lag.

    With PROMETHEUS_MULTIPROC_DIR set (as `make run` does) every gunicorn worker and the
    ledger writer write their samples there and this view sums them; otherwise it shows this
    process only.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
