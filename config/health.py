"""Liveness and readiness probes for the load balancer and `make run`."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_redis import get_redis_connection
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


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
    """Prometheus metrics of this process (decision latency, outcomes, fallback answers).

    Each gunicorn worker has its own registry; scrape every worker or run the exporter in
    multiprocess mode (docs/operations.md).
    """
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
