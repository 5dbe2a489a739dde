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


@functools.cache
def gateway_redis() -> redis.Redis | RedisCluster:
    """The hot path's client: one connection pool per process."""
    return _client(settings.JIT_REDIS_TIMEOUT_MS / 1000)


@functools.cache
def maintenance_redis() -> redis.Redis | RedisCluster:
    return _client(MAINTENANCE_TIMEOUT_SECONDS)


def reset_clients() -> None:
    """Forget the clients (tests that point settings at another Redis)."""
    gateway_redis.cache_clear()
    maintenance_redis.cache_clear()
