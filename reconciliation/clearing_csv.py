"""The clearing CSV of MARQETA.md §12, read as a stream: one row in memory at a time.

`read_rows` is a generator over a text stream (the `csv` module, line by line): it checks the
header, then yields each detail row as a `ClearingRow` (valid) or a `BadRow` (with the problem
and its line number), and finally the `Trailer`. Nothing here touches the database.
`ControlTotals` adds the rows up as they pass, for the trailer check and the file's totals.

Line numbers are physical: the line (1-based, the header is line 1) where the record starts,
as an editor shows it, so ops can find a bad line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import IO, Any

from config.errors import DomainError
from ledger.money import CURRENCY_EXPONENTS, to_minor
from reconciliation.marqeta import CLEARING_TYPES, REFUND_TYPES

HEADER = (
    "record_type",
    "transaction_token",
    "network_reference_id",
    "preceding_related_transaction_token",
    "jit_funding_token",
    "original_jit_funding_token",
    "card_token",
    "user_token",
    "amount",
    "debit_credit",
    "currency",
    "settlement_date",
    "is_final_clearing",
    "amount_to_be_released",
    "mcc",
    "merchant_name",
)
COLUMNS = len(HEADER)
TRAILER = "TRAILER"
# What a file line may be: charges are D, refunds are C (pindebit is captured at once).
DEBIT_TYPES = CLEARING_TYPES | {"pindebit"}
CREDIT_TYPES = REFUND_TYPES
AMOUNT_RE = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,3})?$")  # no sign, exponent or spaces
NAME_RE = re.compile(r"^clearing_(?P<program>.+)_(?P<day>[0-9]{8})_(?P<seq>[0-9]+)\.csv$")
FINAL_VALUES = {"true": True, "false": False, "": None}
LIMITS = {  # column -> longest value we store
    "transaction_token": 80,
    "network_reference_id": 80,
    "preceding_related_transaction_token": 80,
    "jit_funding_token": 80,
    "original_jit_funding_token": 80,
    "card_token": 64,
    "user_token": 64,
    "mcc": 4,
    "merchant_name": 100,
}


class BadClearingFile(DomainError):
    """The file cannot be read as a clearing file (header, encoding, trailer): it is rejected."""

    code = "bad_clearing_file"


@dataclass(frozen=True, slots=True)
class ClearingRow:
    """A valid detail row, amounts in minor units of its currency."""

    line_number: int
    record_type: str
    transaction_token: str
    network_reference_id: str
    preceding_token: str
    jit_funding_token: str
    original_jit_funding_token: str
    card_token: str
    user_token: str
    amount_minor: int
    debit_credit: str
    currency_code: str
    settlement_date: date
    is_final_clearing: bool | None
    amount_to_be_released_minor: int | None
    mcc: str
    merchant_name: str

    @property
    def line_key(self) -> str:
        return self.transaction_token

    @property
    def is_credit(self) -> bool:
        return self.debit_credit == "C"

    @property
    def authorization_link(self) -> str:
        """What the row says it clears: the chain's first JIT message, else the auth's token."""
        return self.original_jit_funding_token or self.preceding_token

    @property
    def names_an_authorization(self) -> bool:
        """A force post names none (MARQETA.md §6.4): no preceding token, no original JIT."""
        return bool(self.preceding_token or self.original_jit_funding_token)


@dataclass(frozen=True, slots=True)
class BadRow:
    """A detail row we cannot apply: `problem` is a stable code, `message` says what is wrong."""

    line_number: int
    problem: str
    message: str
    raw: str
    transaction_token: str = ""
    signed_amount: Decimal | None = None  # when the amount itself was readable

    def line_key(self, sha256: str) -> str:
        return f"bad:{sha256[:16]}:{self.line_number}"


@dataclass(frozen=True, slots=True)
class Trailer:
    line_number: int
    count: int
    net_amount: Decimal  # signed: D positive, C negative


Row = ClearingRow | BadRow | Trailer


def settlement_date_from_name(name: str) -> date | None:
    """`clearing_<program>_<YYYYMMDD>_<seq>.csv` -> the settlement date, else None."""
    match = NAME_RE.match(name.rsplit("/", 1)[-1])
    if not match:
        return None
    try:
        day = match.group("day")
        return date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        return None


def _raw(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()[:1000]


def _signed(amount: str, debit_credit: str) -> Decimal | None:
    if not AMOUNT_RE.match(amount) or debit_credit not in ("D", "C"):
        return None
    value = Decimal(amount)
    return value if debit_credit == "D" else -value


def _bad(line_number: int, fields: list[str], problem: str, message: str) -> BadRow:
    token = fields[1] if len(fields) > 1 and len(fields[1]) <= LIMITS["transaction_token"] else ""
    signed = _signed(fields[8], fields[9]) if len(fields) == COLUMNS else None
    return BadRow(line_number, problem, message, _raw(fields), token, signed)


def _too_long(fields: list[str]) -> str:
    for index, name in enumerate(HEADER):
        limit = LIMITS.get(name)
        if limit and len(fields[index]) > limit:
            return name
    return ""


def parse_detail(fields: list[str], line_number: int) -> ClearingRow | BadRow:
    """One detail row -> a `ClearingRow`, or a `BadRow` naming its first problem."""
    if len(fields) != COLUMNS:
        return _bad(
            line_number,
            fields,
            "column_count",
            f"{len(fields)} columns, expected {COLUMNS}",
        )
    (
        record_type,
        token,
        network_reference_id,
        preceding,
        jit,
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
    ) = fields

    def bad(problem: str, message: str) -> BadRow:
        return _bad(line_number, fields, problem, message)

    if record_type in DEBIT_TYPES:
        direction = "D"
    elif record_type in CREDIT_TYPES:
        direction = "C"
    else:
        return bad("unknown_record_type", f"record_type {record_type[:80]!r} is not one we apply")
    if not token:
        return bad("missing_token", "transaction_token is empty: the line has no key")
    if column := _too_long(fields):
        return bad("field_too_long", f"{column} is longer than {LIMITS[column]} characters")
    if debit_credit not in ("D", "C"):
        return bad("bad_debit_credit", f"debit_credit {debit_credit[:10]!r} is not D or C")
    if debit_credit != direction:
        return bad("bad_debit_credit", f"{record_type} must be {direction}, not {debit_credit}")
    if currency not in CURRENCY_EXPONENTS:
        return bad("unknown_currency", f"currency {currency[:10]!r} is not one we support")
    if not AMOUNT_RE.match(amount):
        return bad("bad_amount", f"amount {amount[:40]!r} is not a positive decimal")
    try:
        amount_minor = to_minor(amount, currency)
    except DomainError as error:
        return bad("bad_amount", error.message)
    if amount_minor <= 0:
        return bad("bad_amount", f"amount {amount} is not above zero")
    try:
        settled_on = date.fromisoformat(settlement_date)
    except ValueError:
        return bad("bad_settlement_date", f"settlement_date {settlement_date[:20]!r} is no date")
    if final not in FINAL_VALUES:
        return bad("bad_is_final_clearing", f"is_final_clearing {final[:10]!r} is not true/false")
    released_minor = None
    if released:
        try:
            if not AMOUNT_RE.match(released):
                raise ValueError
            released_minor = to_minor(released, currency)
        except (DomainError, ValueError):
            return bad("bad_amount", f"amount_to_be_released {released[:40]!r} is not an amount")
    return ClearingRow(
        line_number=line_number,
        record_type=record_type,
        transaction_token=token,
        network_reference_id=network_reference_id,
        preceding_token=preceding,
        jit_funding_token=jit,
        original_jit_funding_token=original,
        card_token=card,
        user_token=user,
        amount_minor=amount_minor,
        debit_credit=debit_credit,
        currency_code=currency,
        settlement_date=settled_on,
        is_final_clearing=FINAL_VALUES[final],
        amount_to_be_released_minor=released_minor,
        mcc=mcc,
        merchant_name=merchant,
    )


def _trailer(fields: list[str], line_number: int) -> Trailer:
    if len(fields) != COLUMNS:
        raise BadClearingFile(f"line {line_number}: the trailer has {len(fields)} columns")
    count, amount, debit_credit = fields[1], fields[8], fields[9]
    signed = _signed(amount, debit_credit)
    if not count.isdigit() or signed is None:
        raise BadClearingFile(
            f"line {line_number}: the trailer's count {count[:20]!r} or total "
            f"{amount[:40]!r} {debit_credit[:3]!r} is unreadable"
        )
    return Trailer(line_number, int(count), signed)


def read_rows(stream: IO[str]) -> Iterator[Row]:
    """Rows of a clearing file, one at a time (a generator: memory stays flat).

    `BadClearingFile` for a wrong header, a malformed trailer, rows after the trailer or bytes
    that are not UTF-8 (raised when reached). A blank line is skipped.
    """
    reader = csv.reader(stream, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise BadClearingFile("the file is empty")
        if tuple(header) != HEADER:
            raise BadClearingFile(
                f"the header is not MARQETA.md §12's ({len(header)} columns: "
                f"{','.join(header)[:200]})"
            )
        trailer: Trailer | None = None
        previous_end = reader.line_num
        for fields in reader:
            line_number, previous_end = previous_end + 1, reader.line_num
            if not fields:
                continue
            if trailer is not None:
                raise BadClearingFile(f"line {line_number}: a row after the trailer")
            if fields[0] == TRAILER:
                trailer = _trailer(fields, line_number)
                yield trailer
            else:
                yield parse_detail(fields, line_number)
    except csv.Error as error:
        raise BadClearingFile(f"line {reader.line_num}: not CSV ({error})") from None
    except UnicodeDecodeError:
        raise BadClearingFile(f"after line {reader.line_num}: the file is not UTF-8") from None


@dataclass
class ControlTotals:
    """The file's own totals, added up row by row, and what the trailer says.

    `later_line` answers "is there a later line for the same authorization?" for rows whose
    `is_final_clearing` is empty: only those authorizations are remembered, so memory grows
    with the number of such rows, not with the file (our exporter fills the column).
    """

    count: int = 0  # detail rows, bad ones too
    net_amount: Decimal = Decimal(0)  # D - C over rows whose amount is readable
    unreadable_amounts: int = 0  # detail rows left out of net_amount
    bad_rows: int = 0
    by_currency: dict[str, dict[str, int]] = field(default_factory=dict)
    first_currency: str = ""
    first_settlement_date: date | None = None
    trailer: Trailer | None = None
    _last_line_of_open_final: dict[str, int] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        if isinstance(row, Trailer):
            self.trailer = row
            return
        self.count += 1
        if isinstance(row, BadRow):
            self.bad_rows += 1
            if row.signed_amount is None:
                self.unreadable_amounts += 1
            else:
                self.net_amount += row.signed_amount
            return
        amount = Decimal(row.amount_minor).scaleb(-CURRENCY_EXPONENTS[row.currency_code])
        self.net_amount += -amount if row.is_credit else amount
        totals = self.by_currency.setdefault(
            row.currency_code, {"debit_minor": 0, "credit_minor": 0}
        )
        totals["credit_minor" if row.is_credit else "debit_minor"] += row.amount_minor
        self.first_currency = self.first_currency or row.currency_code
        self.first_settlement_date = self.first_settlement_date or row.settlement_date
        link = row.authorization_link
        remembered = row.is_final_clearing is None or link in self._last_line_of_open_final
        if link and not row.is_credit and remembered:
            self._last_line_of_open_final[link] = row.line_number

    def is_final(self, row: ClearingRow) -> bool:
        """As sent; when empty, final unless a later line of the file clears the same auth."""
        if row.is_final_clearing is not None:
            return row.is_final_clearing
        link = row.authorization_link
        return not link or self._last_line_of_open_final.get(link, 0) <= row.line_number

    def trailer_check(self) -> tuple[str, str]:
        """(check, message): ok, unverified, missing, count_mismatch or total_mismatch."""
        trailer = self.trailer
        if trailer is None:
            return "missing", "the file has no TRAILER row (truncated?)"
        if trailer.count != self.count:
            return (
                "count_mismatch",
                f"the trailer counts {trailer.count} rows, the file has {self.count}",
            )
        if trailer.net_amount == self.net_amount:
            return "ok", ""
        difference = trailer.net_amount - self.net_amount
        if self.unreadable_amounts:
            return "unverified", (
                f"the trailer's net total {trailer.net_amount} differs by {difference} from the "
                f"readable rows; {self.unreadable_amounts} row(s) with an unreadable amount "
                "should account for it"
            )
        return "total_mismatch", (
            f"the trailer's net total is {trailer.net_amount}, the rows add up to "
            f"{self.net_amount} (difference {difference})"
        )

    def totals_json(self) -> dict[str, Any]:
        return {code: dict(values) for code, values in sorted(self.by_currency.items())}


class HashingReader(io.RawIOBase):
    """A binary stream that hashes what is read through it (SHA-256 of the whole file)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self.sha256, self.size = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._raw.read(len(buffer))
        if not chunk:
            return 0
        size = len(chunk)
        buffer[:size] = chunk
        self.sha256.update(chunk)
        self.size += size
        return size


def text_stream(raw: IO[bytes]) -> IO[str]:
    """UTF-8 text over a binary stream, newlines left to the csv module (RFC 4180)."""
    return io.TextIOWrapper(io.BufferedReader(raw, 1 << 16), encoding="utf-8", newline="")


def sha256_of(raw: IO[bytes], *, chunk_size: int = 1 << 20) -> tuple[str, int]:
    """(hex digest, size) of a binary stream, read in chunks."""
    digest, size = hashlib.sha256(), 0
    while chunk := raw.read(chunk_size):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
