"""Liveness and readiness probes."""

import pytest
from django.test import Client


def test_given_process_up_when_healthz_then_ok():
    assert Client().get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_given_postgres_and_redis_up_when_readyz_then_ready():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": True, "redis": True}


@pytest.mark.django_db
def test_given_redis_unreachable_when_readyz_then_503_naming_redis(settings):
    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    caches._settings = None  # let the new setting take effect
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"postgres": True, "redis": False}
