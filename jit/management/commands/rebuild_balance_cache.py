"""Recompute the Redis balance cache from the ledger."""

from typing import Any

from django.core.management.base import BaseCommand

from jit.sync import rebuild_balance_cache


class Command(BaseCommand):
    help = "Drain the outbox, then load balances, open holds, cards and velocity into Redis."

    def handle(self, *args: Any, **options: Any) -> None:
        report = rebuild_balance_cache()
        self.stdout.write(
            f"outbox events written: {report.drained_events}; accounts: {report.accounts}; "
            f"cards: {report.cards}; open holds: {report.open_holds}"
        )
