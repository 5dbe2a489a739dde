"""Seed the (empty, migrated) bench template database: see bench/population.py."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench import population


class Command(BaseCommand):
    help = "Create the bench program, hot, drain and cold cardholders through the services."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cold", type=int, default=population.COLD)
        parser.add_argument("--processes", type=int, default=2)

    def handle(self, *args: Any, cold: int, processes: int, **options: Any) -> None:
        if "bench" not in settings.DATABASES["default"]["NAME"]:
            raise CommandError("bench_seed runs on a bench database only")
        started = time.monotonic()
        created = population.seed(cold=cold, processes=processes)
        self.stdout.write(f"seeded {created} cardholders in {time.monotonic() - started:.0f} s")
