"""The day's clearing file, in this project's CSV layout (MARQETA.md §12).

`clearing_<program>_<YYYYMMDD>_<seq>.csv`: UTF-8, comma-separated, RFC 4180 quoting, LF line
ends, one header row, a TRAILER row (detail count, net control total and its sign). Written
under a dot-name and renamed, so a puller never reads half a file.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from jit.simulator.model import Event
from ledger.money import to_decimal
from reconciliation.clearing_csv import HEADER

COLUMNS = HEADER  # the layout is reconciliation's (MARQETA.md §12): one definition


@dataclass(frozen=True, slots=True)
class ClearingFile:
    path: Path
    lines: int
    net: Decimal  # debits minus credits
    currency_code: str


def inbox_path(url: str, *, base_dir: Path) -> Path:
    """`CLEARING_INBOX_URL` as a local directory (`file://…` or a plain path, relative to the
    project). Remote inboxes (sftp://, s3://) are not written by the simulator."""
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"the simulator writes to a local inbox only, not {url}")
    path = Path(url.removeprefix("file://"))
    return path if path.is_absolute() else (base_dir / path).resolve()


def _flag(value: object) -> str:
    if value is None:
        return ""
    return "true" if value else "false"


def row(event: Event) -> dict[str, str]:
    """One detail line for a clearing, force post, refund or PIN debit notification."""
    facts, message, body = event.facts, event.message, event.body
    if facts is None or message is None:
        raise ValueError(f"{event.token} is not a transaction of ours")
    released = body.get("amount_to_be_released")
    return {
        "record_type": event.type,
        "transaction_token": event.token,
        "network_reference_id": facts.network_reference_id,
        "preceding_related_transaction_token": message.preceding,
        "jit_funding_token": message.jit_token,
        "original_jit_funding_token": message.original_jit,
        "card_token": facts.card.card_token,
        "user_token": facts.card.user_token,
        "amount": str(to_decimal(message.amount_minor, facts.currency_code)),
        "debit_credit": "D" if event.debit else "C",
        "currency": facts.currency_code,
        "settlement_date": message.created_time[:10],
        "is_final_clearing": _flag(body.get("is_final_clearing")),
        "amount_to_be_released": "" if released is None else f"{released:.2f}",
        "mcc": facts.merchant.mcc,
        "merchant_name": facts.merchant.name,
    }


def next_name(inbox: Path, *, program: str, settlement_date: date) -> str:
    """The first `<seq>` not used for this program and day, in the inbox or already archived
    by the puller (`processed/`, where a name may carry a suffix)."""
    stem = f"clearing_{program}_{settlement_date:%Y%m%d}_"
    pattern = re.compile(re.escape(stem) + r"(\d+)\.csv")
    names = [p.name for folder in (inbox, inbox / "processed") for p in folder.glob(f"{stem}*")]
    used = [int(m.group(1)) for name in names if (m := pattern.match(name))]
    return f"{stem}{max(used, default=0) + 1:03d}.csv"


def write_clearing_file(
    events: list[Event], *, inbox: Path, program: str, settlement_date: date, currency_code: str
) -> ClearingFile:
    """Write the lines and their TRAILER; returns where and what."""
    inbox.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    net = Decimal(0)
    for event in events:
        line = row(event)
        writer.writerow(line)
        net += Decimal(line["amount"]) if event.debit else -Decimal(line["amount"])
    trailer = dict.fromkeys(COLUMNS, "")
    trailer.update(
        record_type="TRAILER",
        transaction_token=str(len(events)),
        amount=f"{abs(net):.2f}",
        debit_credit="D" if net >= 0 else "C",
    )
    writer.writerow(trailer)
    name = next_name(inbox, program=program, settlement_date=settlement_date)
    partial = inbox / f".{name}.part"
    partial.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    os.replace(partial, inbox / name)
    return ClearingFile(path=inbox / name, lines=len(events), net=net, currency_code=currency_code)
