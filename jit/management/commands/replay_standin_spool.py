"""Post stand-in answers (given while Redis was away) to the ledger."""

from typing import Any

from django.core.management.base import BaseCommand

from jit.standin import replay_standin_spool


class Command(BaseCommand):
    help = "Replay the stand-in spool file(s) into the ledger, once per JIT token."

    def handle(self, *args: Any, **options: Any) -> None:
        report = replay_standin_spool()
        self.stdout.write(
            f"spool files: {report.files}; decisions: {report.decisions}; "
            f"approved (posted as stand-in holds): {report.approved}"
        )
