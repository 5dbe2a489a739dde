"""Two Redis clients: the gateway's (short timeouts, so a slow Redis trips the breaker fast)
and one for maintenance work (cache sync, the ledger writer, rebuilds) that may wait longer."""

from __future__ import annotations

import functools

import redis
from django.conf import settings
from redis.cluster import RedisCluster

MAINTENANCE_TIMEOUT_SECONDS = 10.0


def _client(timeout_seconds: float) -> redis.Redis | RedisCluster:
    options = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "decode_responses": True,
    }
    if settings.JIT_REDIS_CLUSTER:
        return RedisCluster.from_url(settings.REDIS_URL, **options)
    return redis.Redis.from_url(settings.REDIS_URL, **options)


_gateway_timeout_ms: int | None = None  # the fallback policy's, once one is installed


def set_gateway_timeout_ms(timeout_ms: int | None) -> None:
    """The fallback policy's Redis timeout for the hot path (None: `JIT_REDIS_TIMEOUT_MS`).

    Why here: ops tune it in the admin (FallbackPolicy.redis_timeout_ms) and each web
    process's policy refresher applies it; the next decision uses a client with that timeout.
    """
    global _gateway_timeout_ms
    _gateway_timeout_ms = timeout_ms


def gateway_redis() -> redis.Redis | RedisCluster:
    """The hot path's client: one connection pool per process (and per timeout in force)."""
    return _gateway_client(_gateway_timeout_ms or settings.JIT_REDIS_TIMEOUT_MS)


@functools.cache
def _gateway_client(timeout_ms: int) -> redis.Redis | RedisCluster:
    return _client(timeout_ms / 1000)


@functools.cache
def maintenance_redis() -> redis.Redis | RedisCluster:
    return _client(MAINTENANCE_TIMEOUT_SECONDS)


def reset_clients() -> None:
    """Forget the clients (tests that point settings at another Redis)."""
    _gateway_client.cache_clear()
    maintenance_redis.cache_clear()
