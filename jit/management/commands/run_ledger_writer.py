"""The ledger writer as a managed process: drains the decision streams into PostgreSQL."""

from __future__ import annotations

import signal
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from jit import metrics
from jit.outbox import ensure_groups, outbox_lag, read_batch, shard_streams, write_batch
from jit.redis_client import maintenance_redis


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
        ensure_groups(client)
        self.stdout.write(f"ledger writer {consumer} started")
        while self.running:
            close_old_connections()
            events = read_batch(
                client, consumer=consumer, count=batch, block_ms=block_ms, streams=streams
            )
            write_batch(client, events)
            metrics.OUTBOX_LAG.set(outbox_lag(client))
        self.stdout.write(f"ledger writer {consumer} stopped")

    def _stop(self, *_: object) -> None:
        self.running = False
