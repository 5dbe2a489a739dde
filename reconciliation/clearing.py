"""Clearing files (MARQETA.md §12): the only writers of `ClearingFile` and `ClearingLine`.

    pull_clearing_files(*, inbox_url, enqueue)         list the inbox, record each new file
    register_clearing_file(*, inbox, inbox_file, ...)  record one file by content hash
    ingest_clearing_file(*, clearing_file, ...)        check it, then apply its lines

Ingestion reads the file twice, streaming both times (one row in memory at a time):

1. **Check.** Hash the bytes (they must still be the recorded file), read the header, every
   row and the trailer, and add the rows up. A file whose trailer is missing, counts other
   rows, or whose net total differs while every amount was readable is **rejected**: nothing
   is applied, the file gets one `bad_file_line` exception. When the count matches but rows
   with unreadable amounts keep the total from being checked, the file is applied and the
   same exception says so (`unverified`). See docs/clearing-files.md.
2. **Apply.** Detail rows in batches of `CLEARING_BATCH_LINES` (5,000), one database
   transaction per batch, set-based: the batch's lookups are made once (a handful of
   queries), its postings are planned in a `ledger.batch.LedgerBatch` (hold chains and
   accounts locked once, in pk order) and written with COPY, its `ClearingLine` rows are
   COPYed, its exceptions opened with one insert. The batch commits its lines, the file's
   counters and the checkpoint `applied_through_line` together, so a process killed mid-file
   resumes after the last committed batch, and the line key (the row's `transaction_token`)
   makes a line seen before (another file, a webhook) change nothing. A batch that collides
   with a concurrent writer (deadlock, a key posted meanwhile) is rolled back and run again.

Each detail row becomes one `ClearingLine`. Matching, in order: the JIT tokens
(`original_jit_funding_token`, then `jit_funding_token`) to hold `jit:<token>`; the
`preceding_related_transaction_token` to a hold's transaction token (walking stored webhook
chains); for a row that names an authorization we cannot find, a fuzzy match (same card, open
hold, amount within `CLEARING_FUZZY_TOLERANCE_PERCENT`, same MCC or merchant, placed within
`CLEARING_FUZZY_WINDOW_DAYS` before settlement, judged on what this batch left open) that is
applied and flagged for review. A row that names no authorization is a force post; a `C` row
is a refund. A hold is consumed under the ledger's row lock, in the batch's memory in line
order, so two lines never take the same held money twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from config.copy import copy_records
from config.errors import DomainError
from ledger import services as ledger
from ledger.batch import LedgerBatch, Planned
from ledger.errors import CurrencyMismatch
from ledger.models import Clearing, Hold, LedgerTransaction, Wallet
from reconciliation import selectors
from reconciliation.clearing_csv import (
    BadClearingFile,
    BadRow,
    ClearingRow,
    ControlTotals,
    HashingReader,
    Trailer,
    read_rows,
    settlement_date_from_name,
    sha256_of,
    text_stream,
)
from reconciliation.errors import UnknownCardOrUser
from reconciliation.inbox import Inbox, InboxFile, InboxUnavailable, open_inbox, open_stored
from reconciliation.models import ClearingFile, ClearingLine
from reconciliation.models import ExceptionKind as Kind
from reconciliation.services import (
    ExceptionSpec,
    negative_balance_spec,
    open_exception,
    open_exceptions,
)

logger = logging.getLogger("reconciliation.clearing")
Outcome, Method = ClearingLine.Outcome, ClearingLine.MatchMethod
FileStatus, TrailerCheck = ClearingFile.Status, ClearingFile.TrailerCheck
ADVISORY_LOCK_CLASS = 0x434C52  # "CLR": pg_try_advisory_lock(class, file id)
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "23505"})  # deadlock, serialization, unique
BATCH_ATTEMPTS = 3
REJECTING_CHECKS = frozenset(
    {TrailerCheck.MISSING, TrailerCheck.COUNT_MISMATCH, TrailerCheck.TOTAL_MISMATCH}
)
Progress = Callable[[int, int], None]  # (lines processed, lines in the file)
LineRecord = dict  # a ClearingLine's columns by attname (COPYed; a model instance costs ~50 µs)


class UnmatchedClearing(DomainError):
    """The line names an authorization we have no hold for, and no fuzzy match was found."""

    code = "unmatched_clearing"


# --- pulling files from the inbox ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    clearing_file: ClearingFile
    created: bool  # False: the same bytes were recorded before (skipped)


def _enqueue_ingest(clearing_file_id: int) -> None:
    from reconciliation.tasks import ingest_clearing_file_task

    ingest_clearing_file_task.delay(clearing_file_id)


def register_clearing_file(
    *, inbox: Inbox, inbox_file: InboxFile, enqueue: bool = True
) -> Registration:
    """Record a file of the inbox by the SHA-256 of its bytes; the same bytes again are skipped.

    The file is then moved to the inbox's `processed/` folder (left in place if it cannot be),
    and, when `enqueue`, its ingestion is queued once the row is committed.
    """
    with closing(inbox.open(inbox_file.path)) as raw:
        sha256, size = sha256_of(raw)
    source_url = inbox.url_of(inbox_file.path)
    with transaction.atomic():
        clearing_file, created = ClearingFile.objects.get_or_create(
            sha256=sha256,
            defaults={
                "name": inbox_file.name[:255],
                "source_url": source_url[:1000],
                "stored_url": source_url[:1000],
                "size_bytes": size,
                "settlement_date": settlement_date_from_name(inbox_file.name),
            },
        )
    if created:
        logger.info(
            "clearing file %s recorded as #%s (%s bytes)", source_url, clearing_file.pk, size
        )
    else:
        logger.info(
            "clearing file %s skipped: the same bytes are file #%s (%s, %s)",
            source_url,
            clearing_file.pk,
            clearing_file.name,
            clearing_file.status,
        )
    moved = inbox.archive(inbox_file.path, sha256=sha256)
    if moved is not None and clearing_file.stored_url == source_url:
        clearing_file.stored_url = inbox.url_of(moved)[:1000]
        ClearingFile.objects.filter(pk=clearing_file.pk, stored_url=source_url).update(
            stored_url=clearing_file.stored_url
        )
    if created and enqueue:
        transaction.on_commit(lambda: _enqueue_ingest(clearing_file.pk), robust=True)
    return Registration(clearing_file=clearing_file, created=created)


def pull_clearing_files(
    *, inbox_url: str | None = None, enqueue: bool = True
) -> list[Registration]:
    """Record every new file of the inbox; with `enqueue`, also queue stalled files again."""
    inbox = open_inbox(inbox_url)
    registrations = [
        register_clearing_file(inbox=inbox, inbox_file=inbox_file, enqueue=enqueue)
        for inbox_file in inbox.new_files()
    ]
    if enqueue:
        for clearing_file_id in selectors.stalled_clearing_file_ids(
            idle_minutes=settings.CLEARING_STALL_MINUTES
        ):
            logger.warning("clearing file #%s stalled: queued again", clearing_file_id)
            transaction.on_commit(lambda pk=clearing_file_id: _enqueue_ingest(pk), robust=True)
    return registrations


# --- ingesting a file ---------------------------------------------------------------------------


@contextmanager
def _ingest_lock(clearing_file_id: int) -> Iterator[bool]:
    """One ingestion per file at a time (a redelivered task, a command run alongside a worker).

    A session-level advisory lock: released at the end, or by PostgreSQL if the process dies.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_LOCK_CLASS, clearing_file_id]
        )
        locked = bool(cursor.fetchone()[0])
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_LOCK_CLASS, clearing_file_id]
                )


def ingest_clearing_file(
    *, clearing_file: ClearingFile, progress: Progress | None = None
) -> ClearingFile:
    """Check the file, then apply its lines; safe to run again (it resumes, or does nothing).

    Returns the file with its final status (`ingested` or `rejected`), or unchanged if another
    process is ingesting it right now. `InboxUnavailable` when the stored file cannot be read.
    """
    with _ingest_lock(clearing_file.pk) as locked:
        clearing_file.refresh_from_db()
        if not locked:
            logger.info("clearing file #%s is being ingested elsewhere", clearing_file.pk)
            return clearing_file
        if clearing_file.is_final:
            return clearing_file
        totals = _check_file(clearing_file)
        if clearing_file.status == FileStatus.REJECTED:
            return clearing_file
        _apply_file(clearing_file, totals, progress=progress)
        with transaction.atomic(durable=True):
            ClearingFile.objects.filter(pk=clearing_file.pk).update(
                status=FileStatus.INGESTED, finished_at=timezone.now()
            )
        clearing_file.refresh_from_db()
    logger.info(
        "clearing file #%s %s ingested: %s applied (%s replayed), %s failed, %s flagged",
        clearing_file.pk,
        clearing_file.name,
        clearing_file.lines_applied,
        clearing_file.lines_replayed,
        clearing_file.lines_failed,
        clearing_file.lines_flagged,
    )
    return clearing_file


def _check_file(clearing_file: ClearingFile) -> ControlTotals:
    """Pass 1: the bytes, the header, the rows and the trailer; may reject the file."""
    totals = ControlTotals()
    with closing(open_stored(clearing_file.stored_url)) as raw:
        hashing = HashingReader(raw)
        try:
            with text_stream(hashing) as stream:
                for row in read_rows(stream):
                    totals.add(row)
        except BadClearingFile as error:
            _reject(clearing_file, totals, check=TrailerCheck.PENDING, message=error.message)
            return totals
    if hashing.sha256.hexdigest() != clearing_file.sha256:
        message = f"{clearing_file.stored_url} no longer has the recorded content (SHA-256)"
        _reject(clearing_file, totals, check=TrailerCheck.PENDING, message=message)
        return totals
    check, message = totals.trailer_check()
    if check in REJECTING_CHECKS:
        _reject(clearing_file, totals, check=check, message=message)
        return totals
    with transaction.atomic(durable=True):
        _save_totals(clearing_file, totals, check=check)
        clearing_file.status = FileStatus.INGESTING
        clearing_file.started_at = clearing_file.started_at or timezone.now()
        clearing_file.save(update_fields=[*TOTAL_FIELDS, "status", "started_at"])
        if check == TrailerCheck.UNVERIFIED:
            _open_file_exception(clearing_file, check=check, message=message)
    return totals


TOTAL_FIELDS = [
    "trailer_check",
    "lines_total",
    "currency_code",
    "debit_total_minor",
    "credit_total_minor",
    "totals",
    "control_net_amount",
    "trailer_count",
    "trailer_net_amount",
    "settlement_date",
]


def _save_totals(clearing_file: ClearingFile, totals: ControlTotals, *, check: str) -> None:
    currency = totals.first_currency
    mine = totals.by_currency.get(currency, {})
    clearing_file.trailer_check = check
    clearing_file.lines_total = totals.count
    clearing_file.currency_code = currency
    clearing_file.debit_total_minor = mine.get("debit_minor", 0)
    clearing_file.credit_total_minor = mine.get("credit_minor", 0)
    clearing_file.totals = totals.totals_json()
    clearing_file.control_net_amount = totals.net_amount
    if totals.trailer is not None:
        clearing_file.trailer_count = totals.trailer.count
        clearing_file.trailer_net_amount = totals.trailer.net_amount
    clearing_file.settlement_date = clearing_file.settlement_date or totals.first_settlement_date


def _reject(
    clearing_file: ClearingFile, totals: ControlTotals, *, check: str, message: str
) -> None:
    with transaction.atomic(durable=True):
        _save_totals(clearing_file, totals, check=check)
        clearing_file.status = FileStatus.REJECTED
        clearing_file.error = message
        clearing_file.finished_at = timezone.now()
        clearing_file.save(update_fields=[*TOTAL_FIELDS, "status", "error", "finished_at"])
        _open_file_exception(clearing_file, check=check or "unreadable", message=message)
    logger.error("clearing file #%s %s rejected: %s", clearing_file.pk, clearing_file.name, message)


def _open_file_exception(clearing_file: ClearingFile, *, check: str, message: str) -> None:
    open_exception(
        kind=Kind.BAD_FILE_LINE,
        dedupe_key=f"bad_file_line:{clearing_file.sha256}",
        currency_code=clearing_file.currency_code,
        details={
            "clearing_file": clearing_file.pk,
            "file": clearing_file.name,
            "trailer_check": check,
            "message": message,
            "status": clearing_file.status,
            "lines_total": clearing_file.lines_total,
            "trailer_count": clearing_file.trailer_count,
            "control_net_amount": str(clearing_file.control_net_amount),
            "trailer_net_amount": str(clearing_file.trailer_net_amount),
        },
    )


def _apply_file(
    clearing_file: ClearingFile, totals: ControlTotals, *, progress: Progress | None
) -> None:
    """Pass 2: the rows after the checkpoint, in committed batches."""
    clearing_file.refresh_from_db(fields=["stored_url", "applied_through_line"])
    batch_size = max(1, settings.CLEARING_BATCH_LINES)
    done = clearing_file.applied_through_line
    batch: list[ClearingRow | BadRow] = []
    with closing(open_stored(clearing_file.stored_url)) as raw, text_stream(raw) as stream:
        for row in read_rows(stream):
            if isinstance(row, Trailer) or row.line_number <= done:
                continue
            batch.append(row)
            if len(batch) >= batch_size:
                _commit_batch(clearing_file, batch, totals, progress=progress)
                batch = []
    if batch:
        _commit_batch(clearing_file, batch, totals, progress=progress)


def _is_retryable(error: Exception) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in RETRYABLE_SQLSTATES


def _commit_batch(
    clearing_file: ClearingFile,
    rows: Sequence[ClearingRow | BadRow],
    totals: ControlTotals,
    *,
    progress: Progress | None,
) -> None:
    """One transaction: the lines, the counters and the checkpoint, or none of them.

    A deadlock with a concurrent webhook, or a concurrent ingestion of another file carrying
    the same token, rolls the batch back; it is applied again (the lines are idempotent).
    """
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            with transaction.atomic(durable=True):
                counts = _apply_batch(clearing_file, rows, totals)
            break
        except (IntegrityError, OperationalError) as error:
            if attempt == BATCH_ATTEMPTS or not _is_retryable(error):
                raise
            logger.warning(
                "clearing file #%s: batch ending at line %s rolled back (%s); again",
                clearing_file.pk,
                rows[-1].line_number,
                error,
            )
            time.sleep(0.05 * attempt)
    clearing_file.refresh_from_db()
    if progress is not None and counts:
        progress(clearing_file.lines_processed, clearing_file.lines_total or 0)


def _apply_batch(
    clearing_file: ClearingFile, rows: Sequence[ClearingRow | BadRow], totals: ControlTotals
) -> Counter:
    locked = ClearingFile.objects.select_for_update().get(pk=clearing_file.pk)
    rows = [row for row in rows if row.line_number > locked.applied_through_line]
    if not rows:
        return Counter()
    batch = Batch(clearing_file=locked, rows=rows, totals=totals)
    lines = [batch.apply(row) for row in rows]
    batch.write()
    copy_records(ClearingLine, lines)
    counts = Counter(line["outcome"] for line in lines)
    applied = counts[Outcome.POSTED] + counts[Outcome.REPLAYED]
    ClearingFile.objects.filter(pk=locked.pk).update(
        lines_applied=F("lines_applied") + applied,
        lines_replayed=F("lines_replayed") + counts[Outcome.REPLAYED],
        lines_failed=F("lines_failed") + counts[Outcome.REFUSED] + counts[Outcome.EXCEPTION],
        lines_flagged=F("lines_flagged") + batch.flagged,
        applied_through_line=rows[-1].line_number,
        heartbeat_at=timezone.now(),
    )
    return counts


# --- applying one batch -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posted:
    """What the line did (or found done) in the ledger: ids, so nothing is loaded lazily.

    A line posted by this batch carries its `planned` posting: its ids exist after the flush.
    """

    outcome: str
    method: str = ""
    hold_id: int | None = None
    clearing_id: int | None = None
    ledger_transaction_id: int | None = None
    message: str = ""
    error_code: str = ""
    planned: Planned | None = None


EXCEPTION_CODES = {  # our own checks: the line is queued, nothing was attempted
    UnknownCardOrUser.code: Kind.UNKNOWN_CARD,
    CurrencyMismatch.code: Kind.CURRENCY_MISMATCH,
    UnmatchedClearing.code: Kind.UNMATCHED_CLEARING,
}
REFUSAL_KINDS = {"idempotency_conflict": Kind.AMOUNT_MISMATCH}  # else unmatched_clearing


class Batch:
    """One batch of rows: lookups made once, postings planned in a `LedgerBatch` and written
    set-based (`write`), exceptions opened together. A handful of statements, not per line.
    """

    def __init__(
        self,
        *,
        clearing_file: ClearingFile,
        rows: Sequence[ClearingRow | BadRow],
        totals: ControlTotals,
    ) -> None:
        self.file, self.totals, self.flagged = clearing_file, totals, 0
        self.ledger = LedgerBatch()
        self.exceptions: list[ExceptionSpec] = []
        self.after_flush: list[Callable[[], ExceptionSpec | None]] = []  # name rows it writes
        self.posted_lines: list[tuple[LineRecord, Planned]] = []
        self.in_this_file: dict[str, int] = {}  # token -> its first line number in the batch
        detail = [row for row in rows if isinstance(row, ClearingRow)]
        tokens = {row.transaction_token for row in detail}
        self.first_lines: dict[str, ClearingLine] = {
            line.line_key: line
            for line in ClearingLine.objects.filter(line_key__any=tokens).select_related(
                "clearing", "ledger_transaction"
            )
        }
        self.clearings = {
            clearing.clearing_key: clearing
            for clearing in Clearing.objects.filter(clearing_key__any=tokens).select_related(
                "posted_by"
            )
        }
        refund_keys = [f"refund:{row.transaction_token}" for row in detail if row.is_credit]
        self.refunds = {
            posting.idempotency_key.removeprefix("refund:"): posting
            for posting in LedgerTransaction.objects.filter(idempotency_key__any=refund_keys)
        }
        charges = [row for row in detail if not row.is_credit]
        self.accounts = selectors.clearing_accounts(
            card_tokens={row.card_token for row in detail if row.card_token},
            user_tokens={row.user_token for row in detail if row.user_token},
        )
        self._find_roots(charges)
        self.ledger.lock(  # chains, then accounts, each in pk order: as the services lock
            root_ids={
                *self.roots_by_key.values(),
                *self.roots_by_txn.values(),
                *(pk for pk in self.roots_by_chain.values() if pk is not None),
                *(hold.pk for holds in self.fuzzy_candidates.values() for hold in holds),
            },
            wallets=self.accounts.wallets.values(),
        )

    def _find_roots(self, charges: list[ClearingRow]) -> None:
        """The root hold ids the charges name (JIT tokens, then preceding tokens and webhook
        chains), and the fuzzy candidates of the ones that name an authorization we lack."""
        self.roots_by_key = selectors.root_ids_by_authorization_key(
            keys={f"jit:{token}" for row in charges for token in _jit_tokens(row)}
        )
        by_token = [row for row in charges if self._by_jit_token(row) is None]
        self.roots_by_txn = selectors.root_ids_by_transaction_token(
            tokens={row.preceding_token for row in by_token if row.preceding_token}
        )
        self.roots_by_chain = selectors.root_ids_for(
            links={
                (row.preceding_token, row.original_jit_funding_token)
                for row in by_token
                if row.preceding_token and row.preceding_token not in self.roots_by_txn
            }
        )
        self.fuzzy_candidates = selectors.fuzzy_candidates(
            clearings=[
                clearing
                for row in by_token
                if self._by_preceding_token(row) is None
                and row.names_an_authorization
                and (clearing := self._fuzzy_clearing(row)) is not None
            ],
            window_days=settings.CLEARING_FUZZY_WINDOW_DAYS,
        )

    def _by_jit_token(self, row: ClearingRow) -> int | None:
        return next(
            (root for token in _jit_tokens(row) if (root := self.roots_by_key.get(f"jit:{token}"))),
            None,
        )

    def _by_preceding_token(self, row: ClearingRow) -> int | None:
        if not row.preceding_token:
            return None
        return self.roots_by_txn.get(row.preceding_token) or self.roots_by_chain.get(
            (row.preceding_token, row.original_jit_funding_token)
        )

    def _fuzzy_clearing(self, row: ClearingRow) -> selectors.FuzzyClearing | None:
        try:
            wallet = self._wallet(row)
        except DomainError:  # unknown card or currency: the line is queued for that instead
            return None
        return selectors.FuzzyClearing(
            wallet_id=wallet.pk,
            card_token=row.card_token,
            amount_minor=row.amount_minor,
            mcc=row.mcc,
            merchant_name=row.merchant_name,
            settled_on=row.settlement_date,
        )

    def write(self) -> None:
        """Flush the planned postings, then give the lines their ids and open the exceptions."""
        self.ledger.flush()
        for line, planned in self.posted_lines:
            line["clearing_id"] = planned.clearing_id
            line["ledger_transaction_id"] = planned.transaction_id
        later = [spec for make in self.after_flush if (spec := make()) is not None]
        open_exceptions(self.exceptions + later)

    # one row -> one ClearingLine (unsaved; the batch inserts them together)

    def apply(self, row: ClearingRow | BadRow) -> LineRecord:
        if isinstance(row, BadRow):
            return self._bad(row)
        key = row.line_key
        earlier = self.in_this_file.get(key)
        first = self.first_lines.get(key)
        if earlier is None and first is not None and first.file_id == self.file.pk:
            earlier = first.line_number  # committed by an earlier batch of this file
        self.in_this_file.setdefault(key, row.line_number)
        if earlier is not None:
            return self._duplicate(row, earlier_line=earlier)
        if first is not None and first.outcome in (Outcome.POSTED, Outcome.REPLAYED):
            return self._resent(row, first)
        # new, or re-sent after it failed (no money moved under its token): try it now
        return self._attempt(row, key=key if first is None else self._repeat_key(row))

    def _line(self, row: ClearingRow, *, key: str, posted: Posted) -> LineRecord:
        line = self._unsaved_line(row, key=key, posted=posted)
        if posted.planned is not None:
            self.posted_lines.append((line, posted.planned))
        return line

    def _unsaved_line(self, row: ClearingRow, *, key: str, posted: Posted) -> LineRecord:
        return LineRecord(
            file_id=self.file.pk,
            line_number=row.line_number,
            line_key=key,
            record_type=row.record_type,
            transaction_token=row.transaction_token,
            network_reference_id=row.network_reference_id,
            preceding_token=row.preceding_token,
            jit_funding_token=row.jit_funding_token,
            original_jit_funding_token=row.original_jit_funding_token,
            card_token=row.card_token,
            user_token=row.user_token,
            amount_minor=row.amount_minor,
            debit_credit=row.debit_credit,
            currency_code=row.currency_code,
            settlement_date=row.settlement_date,
            is_final_clearing=row.is_final_clearing,
            amount_to_be_released_minor=row.amount_to_be_released_minor,
            mcc=row.mcc,
            merchant_name=row.merchant_name,
            outcome=posted.outcome,
            match_method=posted.method,
            hold_id=posted.hold_id,
            clearing_id=posted.clearing_id,
            ledger_transaction_id=posted.ledger_transaction_id,
            error_code=posted.error_code,
            message=posted.message[:200],
        )

    def _details(self, row: ClearingRow | BadRow, **extra: Any) -> dict[str, Any]:
        return {
            "clearing_file": self.file.pk,
            "file": self.file.name,
            "line_number": row.line_number,
            "transaction_token": row.transaction_token,
            **extra,
        }

    def _spec(
        self,
        row: ClearingRow,
        *,
        kind: str,
        dedupe_key: str,
        details: dict[str, Any],
        amount_minor: int | None = None,
        **links: int | None,
    ) -> ExceptionSpec:
        """An exception about `row`: its card, cardholder, amount (unless another is given)
        and currency, `links` (hold_id, clearing_id, ledger_transaction_id) and `details`."""
        return ExceptionSpec(
            kind=kind,
            dedupe_key=dedupe_key,
            card_token=row.card_token,
            user_token=row.user_token,
            amount_minor=row.amount_minor if amount_minor is None else amount_minor,
            currency_code=row.currency_code,
            details=self._details(row, **details),
            **links,
        )

    def _repeat_key(self, row: ClearingRow) -> str:
        return f"repeat:{self.file.sha256[:16]}:{row.line_number}"

    def _bad(self, row: BadRow) -> LineRecord:
        self.exceptions.append(
            ExceptionSpec(
                kind=Kind.BAD_FILE_LINE,
                dedupe_key=f"bad_file_line:{self.file.sha256}:{row.line_number}",
                details=self._details(row, problem=row.problem, message=row.message, raw=row.raw),
            )
        )
        return LineRecord(
            file_id=self.file.pk,
            line_number=row.line_number,
            line_key=row.line_key(self.file.sha256),
            transaction_token=row.transaction_token,
            outcome=Outcome.EXCEPTION,
            error_code=row.problem,
            message=f"line {row.line_number}: {row.message}"[:200],
            raw=row.raw,
        )

    def _duplicate(self, row: ClearingRow, *, earlier_line: int) -> LineRecord:
        """The same token twice in one file: the first line counts, this one is queued."""
        self.exceptions.append(
            self._spec(
                row,
                kind=Kind.DUPLICATE,
                dedupe_key=f"duplicate:{self.file.sha256}:{row.line_number}",
                details={"first_line_number": earlier_line},
            )
        )
        posted = Posted(
            Outcome.EXCEPTION,
            error_code="duplicate",
            message=f"the token is on line {earlier_line} of this file already",
        )
        return self._line(row, key=self._repeat_key(row), posted=posted)

    def _resent(self, row: ClearingRow, first: ClearingLine) -> LineRecord:
        """A line another file applied: nothing moves; a different amount is queued."""
        key, source = self._repeat_key(row), f"file #{first.file_id} line {first.line_number}"
        if (first.amount_minor, first.debit_credit) == (row.amount_minor, row.debit_credit):
            posted = Posted(
                Outcome.REPLAYED,
                hold_id=first.hold_id,
                clearing_id=first.clearing_id,
                ledger_transaction_id=first.ledger_transaction_id,
                message=f"applied before by {source}",
            )
            return self._line(row, key=key, posted=posted)
        posted = self._mismatch(
            row,
            posted_minor=first.amount_minor or 0,
            posted_direction=first.debit_credit,
            clearing=first.clearing,
            posting=first.ledger_transaction,
            source=source,
        )
        return self._line(row, key=key, posted=posted)

    def _mismatch(
        self,
        row: ClearingRow,
        *,
        posted_minor: int,
        posted_direction: str,
        clearing: Clearing | None,
        posting: LedgerTransaction | None,
        source: str,
    ) -> Posted:
        """Posted before with another amount: queued for ops, never overwritten."""
        self.exceptions.append(
            self._spec(
                row,
                kind=Kind.AMOUNT_MISMATCH,
                dedupe_key=f"amount_mismatch:file:{row.transaction_token}",
                clearing_id=clearing.pk if clearing else None,
                ledger_transaction_id=posting.pk if posting else None,
                amount_minor=row.amount_minor - posted_minor,
                details={
                    "file_amount_minor": row.amount_minor,
                    "file_debit_credit": row.debit_credit,
                    "posted_amount_minor": posted_minor,
                    "posted_debit_credit": posted_direction,
                    "posted_by": source,
                },
            )
        )
        return Posted(
            Outcome.EXCEPTION,
            clearing_id=clearing.pk if clearing else None,
            ledger_transaction_id=posting.pk if posting else None,
            error_code="amount_mismatch",
            message=f"posted by {source} as {posted_minor} {posted_direction}"[:200],
        )

    def _attempt(self, row: ClearingRow, *, key: str) -> LineRecord:
        if (posted := self._posted_before(row)) is None:
            try:  # a refused posting left nothing in the batch (LedgerBatch checks first)
                posted = self._post(row)
            except DomainError as refusal:
                posted = self._refused(row, refusal)
        return self._line(row, key=key, posted=posted)

    def _posted_before(self, row: ClearingRow) -> Posted | None:
        """A webhook (or JIT advice) already posted this token: replay, or queue a mismatch."""
        clearing = self.clearings.get(row.transaction_token)
        refund = self.refunds.get(row.transaction_token) if row.is_credit else None
        if clearing is None and refund is None:
            return None
        if clearing is not None:
            found_minor, direction, posting = clearing.amount_minor, "D", clearing.posted_by
        else:
            found_minor = selectors.refund_amount_minor(posting=refund)
            direction, posting = "C", refund
        source = f"{posting.actor} ({posting.idempotency_key})"
        if (found_minor, direction) != (row.amount_minor, row.debit_credit):
            return self._mismatch(
                row,
                posted_minor=found_minor,
                posted_direction=direction,
                clearing=clearing,
                posting=posting,
                source=source,
            )
        return Posted(
            Outcome.REPLAYED,
            hold_id=clearing.hold_id if clearing else None,
            clearing_id=clearing.pk if clearing else None,
            ledger_transaction_id=posting.pk,
            message=f"already posted by {source}",
        )

    def _refused(self, row: ClearingRow, refusal: DomainError) -> Posted:
        ours = refusal.code in EXCEPTION_CODES
        kind = EXCEPTION_CODES.get(refusal.code) or REFUSAL_KINDS.get(
            refusal.code, Kind.UNMATCHED_CLEARING
        )
        self.exceptions.append(
            self._spec(
                row,
                kind=kind,
                dedupe_key=f"{kind}:{row.transaction_token}",
                details={
                    "error_code": refusal.code,
                    "message": refusal.message,
                    "record_type": row.record_type,
                    "preceding_token": row.preceding_token,
                    "original_jit_funding_token": row.original_jit_funding_token,
                    **refusal.details,
                },
            )
        )
        return Posted(
            Outcome.EXCEPTION if ours else Outcome.REFUSED,
            error_code=refusal.code[:60],
            message=refusal.message,
        )

    # posting

    def _wallet(self, row: ClearingRow) -> Wallet:
        return self.accounts.wallet_for(
            card_token=row.card_token, user_token=row.user_token, currency_code=row.currency_code
        )

    def _post(self, row: ClearingRow) -> Posted:
        wallet = self._wallet(row)
        merchant = ledger.Merchant(
            card_token=row.card_token, mcc=row.mcc, merchant_name=row.merchant_name
        )
        if row.is_credit:
            planned = self.ledger.refund(
                wallet=wallet,
                amount_minor=row.amount_minor,
                refund_key=row.transaction_token,
                memo=f"refund {row.merchant_name}".strip(),
                metadata={"clearing_file": self.file.pk, "line_number": row.line_number},
            )
            return Posted(Outcome.POSTED, Method.REFUND, planned=planned)
        hold, method = self._match(row, wallet=wallet)
        if hold is None:
            planned = self.ledger.force_post(
                wallet=wallet,
                amount_minor=row.amount_minor,
                clearing_key=row.transaction_token,
                merchant=merchant,
            )
            self._flag_negative(row, wallet, planned)
            message = "force post: no authorization named"
            return Posted(Outcome.POSTED, Method.FORCE_POST, message=message, planned=planned)
        root_id = hold.original_id or hold.pk
        planned = self.ledger.clear_hold(  # an expired or closed hold still charges
            root_id=root_id,
            wallet=wallet,
            amount_minor=row.amount_minor,
            clearing_key=row.transaction_token,
            is_final=self.totals.is_final(row),
            merchant=merchant,
        )
        message = self._check_released(row, root_id, planned)
        if method == Method.FUZZY:
            self._flag_fuzzy(row, hold, root_id, planned)
            message = "fuzzy match: review"
        if planned.excess_minor:
            self._flag_negative(row, wallet, planned)
        return Posted(Outcome.POSTED, method, hold_id=root_id, message=message, planned=planned)

    def _match(self, row: ClearingRow, *, wallet: Wallet) -> tuple[Hold | None, str]:
        """(root hold, method), or (None, "") for a force post; `UnmatchedClearing` otherwise."""
        if (root_id := self._by_jit_token(row)) is not None:
            return self._ours(self.ledger.root(root_id), wallet), Method.JIT_TOKEN
        if (root_id := self._by_preceding_token(row)) is not None:
            return self._ours(self.ledger.root(root_id), wallet), Method.PRECEDING_TOKEN
        if not row.names_an_authorization:
            return None, Method.FORCE_POST
        hold = selectors.pick_fuzzy_hold(
            self._fuzzy_clearing(row),
            self.fuzzy_candidates.get((wallet.pk, row.card_token), []),
            tolerance_percent=settings.CLEARING_FUZZY_TOLERANCE_PERCENT,
            window_days=settings.CLEARING_FUZZY_WINDOW_DAYS,
            open_remaining=lambda candidate: self.ledger.open_remaining_minor(candidate.pk),
        )  # open amounts as this batch has left them, not as committed
        if hold is not None:
            return hold, Method.FUZZY
        named = row.preceding_token or f"jit:{row.original_jit_funding_token}"
        raise UnmatchedClearing(f"no hold for {named}, and no open hold looks like it")

    @staticmethod
    def _ours(hold: Hold, wallet: Wallet) -> Hold:
        root_id = hold.original_id or hold.pk
        if hold.wallet_id != wallet.pk:
            raise UnmatchedClearing(
                f"{hold.authorization_key} is another cardholder's hold", hold_id=root_id
            )
        return hold

    # flags: posted, but ops should look

    def _flag_fuzzy(self, row: ClearingRow, hold: Hold, root_id: int, planned: Planned) -> None:
        self.flagged += 1
        self.after_flush.append(
            lambda: self._spec(
                row,
                kind=Kind.UNMATCHED_CLEARING,
                dedupe_key=f"unmatched_clearing:{row.transaction_token}",
                hold_id=root_id,
                clearing_id=planned.clearing_id,
                ledger_transaction_id=planned.transaction_id,
                details={
                    "review": "fuzzy match, review",
                    "matched_hold": hold.authorization_key,
                    "preceding_token": row.preceding_token,
                    "original_jit_funding_token": row.original_jit_funding_token,
                },
            )
        )

    def _check_released(self, row: ClearingRow, root_id: int, planned: Planned) -> str:
        """Marqeta's `amount_to_be_released` against what the final clearing released."""
        marqeta, clearing = row.amount_to_be_released_minor, planned.clearing.fields
        released = clearing["released_minor"]
        if not clearing["is_final"] or marqeta is None or marqeta == released:
            return ""
        self.flagged += 1
        self.after_flush.append(
            lambda: self._spec(
                row,
                kind=Kind.AMOUNT_MISMATCH,
                dedupe_key=f"amount_mismatch:{row.transaction_token}",
                hold_id=root_id,
                clearing_id=planned.clearing_id,
                ledger_transaction_id=planned.transaction_id,
                amount_minor=marqeta - released,
                details={"amount_to_be_released_minor": marqeta, "released_minor": released},
            )
        )
        return "amount_to_be_released differs from what we released"

    def _flag_negative(self, row: ClearingRow, wallet: Wallet, planned: Planned) -> None:
        """One exception per negative episode, the same one a webhook would open."""
        available = planned.available_after.get(wallet.available_id, 0)
        if available >= 0:
            return

        def spec() -> ExceptionSpec | None:
            episode_id, opened_by_id = planned.negative_episode or (
                planned.transaction_id,
                planned.transaction_id,
            )
            return negative_balance_spec(
                wallet=wallet,
                available_minor=available,
                episode_id=episode_id,
                opened_by_id=opened_by_id,
                posting_key=planned.plan.idempotency_key,
                card_token=row.card_token,
                details=self._details(row),
            )

        self.after_flush.append(spec)


def _jit_tokens(row: ClearingRow) -> list[str]:
    """The JIT tokens a row names, the original authorization's first."""
    return [token for token in (row.original_jit_funding_token, row.jit_funding_token) if token]


__all__ = [
    "InboxUnavailable",
    "Registration",
    "UnmatchedClearing",
    "ingest_clearing_file",
    "pull_clearing_files",
    "register_clearing_file",
]
