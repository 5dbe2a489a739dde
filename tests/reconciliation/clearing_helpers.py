"""Clearing files for tests: MARQETA.md §12 rows, written to an inbox and ingested for real."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.utils import timezone

from ledger.models import Hold, LedgerTransaction, Wallet
from ledger.services import Merchant, place_hold
from reconciliation.clearing import ingest_clearing_file, register_clearing_file
from reconciliation.clearing_csv import HEADER
from reconciliation.inbox import open_inbox
from reconciliation.models import ClearingFile, ReconciliationException
from tests.reconciliation.conftest import CARD, USER

DAY = "2026-05-09"  # MARQETA.md §11's week


def row(
    token: str,
    amount: str,
    *,
    record_type: str = "authorization.clearing",
    preceding: str = "",
    jit: str | None = None,
    original: str = "",
    debit_credit: str | None = None,
    currency: str = "USD",
    final: str = "true",
    released: str = "",
    card: str = CARD,
    user: str = USER,
    mcc: str = "7512",
    merchant: str = "SUNSET CAR RENTAL",
    settlement_date: str = DAY,
) -> list[str]:
    """One detail row in the §12 column order (a charge unless the record type is a refund)."""
    if debit_credit is None:
        debit_credit = "C" if record_type.startswith(("refund", "pindebit.refund")) else "D"
    return [
        record_type,
        token,
        f"nrid-{token}",
        preceding,
        f"jit-{token}" if jit is None else jit,
        original,
        card,
        user,
        amount,
        debit_credit,
        currency,
        settlement_date,
        final,
        released,
        mcc,
        merchant,
    ]


def trailer_for(rows: Iterable[list[str]]) -> list[str]:
    """The trailer our exporter writes: the count and the net total of the detail rows."""
    rows = list(rows)
    net = Decimal("0.00")
    for fields in rows:
        if len(fields) > 9 and fields[8].replace(".", "").isdigit():  # readable amounts only
            net += Decimal(fields[8]) if fields[9] == "D" else -Decimal(fields[8])
    empty = [""] * 6
    direction = "D" if net >= 0 else "C"
    return ["TRAILER", str(len(rows)), *empty, f"{abs(net):.2f}", direction, *empty]


def clearing_csv(
    rows: Iterable[list[str]], *, trailer: list[str] | None | bool = True, header=HEADER
) -> bytes:
    """A whole file; `trailer=True` computes it, a list is written as given, None/False omits it."""
    rows = list(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if trailer is True:
        writer.writerow(trailer_for(rows))
    elif trailer:
        writer.writerow(trailer)
    return buffer.getvalue().encode()


def ingest_bytes(inbox: Path, content: bytes, *, name: str = "clearing_demo_20260509_1.csv"):
    """Drop the file in a local inbox, record it and ingest it now (no Celery)."""
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_bytes(content)
    box = open_inbox(str(inbox))
    (inbox_file,) = [f for f in box.new_files() if f.name == name]
    registration = register_clearing_file(inbox=box, inbox_file=inbox_file, enqueue=False)
    return ingest_clearing_file(clearing_file=registration.clearing_file)


def ingest_rows(inbox: Path, rows: Iterable[list[str]], **kwargs: Any) -> ClearingFile:
    return ingest_bytes(inbox, clearing_csv(rows), **kwargs)


def authorize(
    wallet: Wallet,
    *,
    txn: str,
    amount_minor: int,
    jit: str | None = None,
    mcc: str = "7512",
    merchant: str = "SUNSET CAR RENTAL",
    card: str = CARD,
    original: Hold | None = None,
    expires_in: timedelta = timedelta(days=7),
) -> Hold:
    """An approved authorization as the ledger writer records it (`jit:<token>`)."""
    jit = jit or txn.replace("txn-", "jit-")
    return place_hold(
        wallet=wallet,
        amount_minor=amount_minor,
        authorization_key=f"jit:{jit}",
        expires_at=timezone.now() + expires_in,
        original=original,
        merchant=Merchant(card_token=card, mcc=mcc, merchant_name=merchant),
        transaction_token=txn,
        jit_funding_token=jit,
        allow_overdraw=True,
    )


def kinds() -> list[str]:
    return sorted(ReconciliationException.objects.values_list("kind", flat=True))


def exception_lines() -> list[tuple[str, int | None]]:
    """(kind, line number) of every exception, for the line-level ones."""
    return sorted(
        (
            (exception.kind, exception.details.get("line_number"))
            for exception in ReconciliationException.objects.all()
        ),
        key=lambda pair: (pair[0], pair[1] or 0),
    )


def postings() -> int:
    return LedgerTransaction.objects.count()
