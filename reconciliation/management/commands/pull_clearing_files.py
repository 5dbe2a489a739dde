"""`manage.py pull_clearing_files [--inbox URL]`: what the beat task does, but now and here.

Records the inbox's new files (the same bytes twice are skipped) and ingests each one, and any
recorded file not finished yet, in this process, with a progress bar per file. Celery is not
involved; a worker already ingesting a file makes this run skip it (one ingestion per file).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from reconciliation.clearing import ingest_clearing_file, pull_clearing_files
from reconciliation.inbox import open_inbox
from reconciliation.models import ClearingFile


class Command(BaseCommand):
    help = "Pull clearing files from the inbox (CLEARING_INBOX_URL) and ingest them now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--inbox", default=None, help="fsspec URL or path (default: CLEARING_INBOX_URL)"
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="no progress bars (logs, CI)"
        )

    def handle(self, *args: Any, inbox: str | None, no_progress: bool, **options: Any) -> None:
        box = open_inbox(inbox)
        self.stdout.write(f"inbox {box.url}")
        registrations = pull_clearing_files(inbox_url=inbox, enqueue=False)
        for registration in registrations:
            if not registration.created:
                skipped = registration.clearing_file
                self.stdout.write(f"skipped {skipped.name}: same bytes as file #{skipped.pk}")
        pending = ClearingFile.objects.filter(
            status__in=[ClearingFile.Status.RECEIVED, ClearingFile.Status.INGESTING]
        ).order_by("pk")
        for clearing_file in pending:
            self._ingest(clearing_file, quiet=no_progress)

    def _ingest(self, clearing_file: ClearingFile, *, quiet: bool) -> None:
        with tqdm(
            total=clearing_file.lines_total or None,
            initial=clearing_file.lines_processed,
            desc=clearing_file.name[:40],
            unit=" lines",
            disable=quiet,
            file=self.stderr._out,
        ) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            clearing_file = ingest_clearing_file(clearing_file=clearing_file, progress=progress)
        self.stdout.write(
            f"{clearing_file.name}: {clearing_file.status}"
            f" ({clearing_file.lines_applied} applied, {clearing_file.lines_replayed} replayed,"
            f" {clearing_file.lines_failed} failed, {clearing_file.lines_flagged} flagged"
            f"{'; ' + clearing_file.error if clearing_file.error else ''})"
        )
