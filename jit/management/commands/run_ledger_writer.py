"""The ledger writer as a managed process: drains the decision streams into PostgreSQL, and
every few seconds pushes cache moves a crash or an outage left behind (`jit.pushes`)."""

from __future__ import annotations

import logging
import signal
import socket
import time
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections, connections

from jit import metrics
from jit.outbox import ensure_groups, outbox_lag, read_batch, shard_streams, write_batches
from jit.pushes import OVERDUE_SECONDS, push_overdue
from jit.redis_client import maintenance_redis
from jit.selectors import pending_count

logger = logging.getLogger("jit.outbox")


class Command(BaseCommand):
    help = "Write JIT decisions from the Redis outbox to the ledger until stopped (SIGTERM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--consumer", default=f"writer-{socket.gethostname()}")
        parser.add_argument("--batch", type=int, default=500)
        parser.add_argument("--block-ms", type=int, default=1000)
        parser.add_argument("--shard", default="0/1", help="K/N: partitions K, K+N, K+2N, ...")

    def handle(
        self, *args: Any, consumer: str, batch: int, block_ms: int, shard: str, **options: Any
    ) -> None:
        number, _, total = shard.partition("/")
        streams = shard_streams(int(number), int(total or 1))
        self.running = True
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        client = maintenance_redis()
        self.stdout.write(f"ledger writer {consumer} started")
        backoff = Backoff()
        self.next_sweep = 0.0
        while self.running:
            try:
                if backoff.failures:  # after a Redis restart or flush the groups may be gone
                    ensure_groups(client)
                self._step(
                    client, consumer=consumer, batch=batch, block_ms=block_ms, streams=streams
                )
                backoff.reset()
            except (redis.RedisError, DatabaseError) as error:
                # Redis or PostgreSQL away, a deadlock: nothing was acknowledged, so the batch
                # is this consumer's pending work and is read again first. Wait, then retry.
                delay = backoff.next()
                logger.warning("ledger writer %s: %s; again in %.1f s", consumer, error, delay)
                connections.close_all()
                time.sleep(delay)
        self.stdout.write(f"ledger writer {consumer} stopped")

    def _step(
        self, client: redis.Redis, *, consumer: str, batch: int, block_ms: int, streams: list[str]
    ) -> None:
        close_old_connections()
        events = read_batch(
            client, consumer=consumer, count=batch, block_ms=block_ms, streams=streams
        )
        write_batches(client, events, size=batch)
        metrics.OUTBOX_LAG.set(outbox_lag(client))
        if time.monotonic() >= self.next_sweep:
            push_overdue()
            metrics.CACHE_PUSHES_PENDING.set(pending_count())
            self.next_sweep = time.monotonic() + OVERDUE_SECONDS

    def _stop(self, *_: object) -> None:
        self.running = False


class Backoff:
    """0.2 s, doubling to 5 s while failures last; a success starts over."""

    FIRST, LAST = 0.2, 5.0

    def __init__(self) -> None:
        self.failures = 1  # the first step also makes sure the consumer groups exist

    def next(self) -> float:
        self.failures += 1
        return min(self.LAST, self.FIRST * 2 ** (self.failures - 2))

    def reset(self) -> None:
        self.failures = 0
