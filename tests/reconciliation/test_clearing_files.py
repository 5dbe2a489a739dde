"""Clearing files as files: bad lines, the trailer, a file killed mid-way and resumed, the
parser's flat memory, two ingestions racing for one hold."""

from __future__ import annotations

import csv
import inspect
import io
import threading
import tracemalloc
from collections import Counter

import pytest
from django.db import connection

from ledger.models import Clearing
from reconciliation import clearing
from reconciliation.clearing_csv import HEADER, BadRow, ClearingRow, Trailer, read_rows
from reconciliation.models import ClearingFile, ClearingLine, ReconciliationException
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.reconciliation.clearing_helpers import (
    authorize,
    clearing_csv,
    exception_lines,
    ingest_bytes,
    ingest_rows,
    postings,
    row,
    trailer_for,
)

pytestmark = pytest.mark.django_db


def force(token: str, amount: str = "10.00") -> list[str]:
    return row(token, amount, jit="", final="", mcc="7523", merchant="CITY PARKING")


# --- bad lines ----------------------------------------------------------------------------------


def test_given_bad_lines_when_ingested_then_each_queued_with_its_line_and_the_rest_applied(
    tmp_path, week_wallet
):
    # given: lines 3, 5 and 6 are bad (column count, amount, currency)
    rows = [
        force("txn-1"),
        force("txn-2")[:10],
        force("txn-3"),
        force("txn-4", amount="12.345"),
        [*force("txn-5")[:10], "XXX", *force("txn-5")[11:]],
        force("txn-6"),
    ]
    # the exporter's trailer counts every row; its total has the real amounts
    trailer = trailer_for([force(f"txn-{n}") for n in range(1, 7)])
    # when
    clearing_file = ingest_bytes(tmp_path / "inbox", clearing_csv(rows, trailer=trailer))
    # then: three posted, three queued with their line numbers
    assert clearing_file.status == "ingested"
    assert clearing_file.trailer_check == "unverified"  # 2 rows' amounts are unreadable
    assert (clearing_file.lines_applied, clearing_file.lines_failed) == (3, 3)
    assert exception_lines() == [
        ("bad_file_line", None),  # the file's own: its total could not be checked
        ("bad_file_line", 3),
        ("bad_file_line", 5),
        ("bad_file_line", 6),
    ]
    codes = dict(ClearingLine.objects.values_list("line_number", "error_code"))
    assert codes == {2: "", 3: "column_count", 4: "", 5: "bad_amount", 6: "unknown_currency", 7: ""}
    assert balances(week_wallet) == (25_000 - 3_000, 0)
    bad = ClearingLine.objects.get(line_number=6)
    assert "XXX" in bad.raw
    assert_ledger_consistent()


def test_given_a_bad_line_when_the_trailer_totals_the_good_ones_then_ok(tmp_path, week_wallet):
    rows = [force("txn-1"), [*force("txn-2")[:10], "ZZZ", *force("txn-2")[11:]]]
    clearing_file = ingest_bytes(tmp_path / "inbox", clearing_csv(rows))
    assert clearing_file.trailer_check == "ok"  # an unknown currency still has its amount
    assert exception_lines() == [("bad_file_line", 3)]


@pytest.mark.parametrize(
    ("trailer", "check"),
    [
        (None, "missing"),
        (["TRAILER", "3", *[""] * 6, "20.00", "D", *[""] * 6], "count_mismatch"),
        (["TRAILER", "2", *[""] * 6, "21.00", "D", *[""] * 6], "total_mismatch"),
    ],
)
def test_given_a_trailer_that_disagrees_when_ingested_then_rejected_and_nothing_applied(
    tmp_path, week_wallet, trailer, check
):
    # given
    content = clearing_csv([force("txn-1"), force("txn-2")], trailer=trailer)
    before = postings()
    # when
    clearing_file = ingest_bytes(tmp_path / "inbox", content)
    # then
    assert (clearing_file.status, clearing_file.trailer_check) == ("rejected", check)
    assert clearing_file.error
    assert postings() == before
    assert not ClearingLine.objects.exists()
    (exception,) = ReconciliationException.objects.all()
    assert (exception.kind, exception.details["trailer_check"]) == ("bad_file_line", check)
    assert exception.dedupe_key == f"bad_file_line:{clearing_file.sha256}"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "empty"),
        (b"record_type,amount\nTRAILER,0\n", "header"),
        (clearing_csv([force("txn-1")]) + b"authorization.clearing,late\n", "after the trailer"),
        (clearing_csv([force("txn-\xe9")]).replace("é".encode(), b"\xe9"), "UTF-8"),
    ],
)
def test_given_an_unreadable_file_when_ingested_then_rejected_with_the_reason(
    tmp_path, week_wallet, content, says
):
    before = postings()
    clearing_file = ingest_bytes(tmp_path / "inbox", content)
    assert clearing_file.status == "rejected"
    assert says in clearing_file.error
    assert postings() == before
    assert [e.kind for e in ReconciliationException.objects.all()] == ["bad_file_line"]


def test_given_a_rejected_file_when_ingested_again_then_nothing_changes(tmp_path, week_wallet):
    clearing_file = ingest_bytes(tmp_path / "inbox", clearing_csv([force("txn-1")], trailer=None))
    again = clearing.ingest_clearing_file(clearing_file=clearing_file)
    assert again.status == "rejected"
    assert ReconciliationException.objects.count() == 1


# --- killed mid-way -----------------------------------------------------------------------------


class Killed(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs."""


def test_given_a_file_killed_halfway_when_ingested_again_then_resumed_without_double_posting(
    tmp_path, week_wallet, settings, monkeypatch
):
    # given: 10 force posts, batches of 3; the process dies on the 8th line
    settings.CLEARING_BATCH_LINES = 3
    content = clearing_csv([force(f"txn-{n}") for n in range(1, 11)])
    apply = clearing.Batch.apply
    calls = Counter()

    def dying(self, row):
        calls["lines"] += 1
        if calls["lines"] == 8:
            raise Killed
        return apply(self, row)

    monkeypatch.setattr(clearing.Batch, "apply", dying)
    with pytest.raises(Killed):
        ingest_bytes(tmp_path / "inbox", content)
    # then: two batches (6 lines) are in; the file says it is not done
    clearing_file = ClearingFile.objects.get()
    assert clearing_file.status == "ingesting"
    assert (clearing_file.applied_through_line, clearing_file.lines_applied) == (7, 6)
    assert balances(week_wallet) == (25_000 - 6_000, 0)
    # when: the task runs again (a redelivered message, or the beat's requeue)
    monkeypatch.setattr(clearing.Batch, "apply", apply)
    clearing_file = clearing.ingest_clearing_file(clearing_file=clearing_file)
    # then: the other 4 lines, each once
    assert clearing_file.status == "ingested"
    assert (clearing_file.lines_applied, clearing_file.lines_failed) == (10, 0)
    assert ClearingLine.objects.count() == 10
    assert Clearing.objects.count() == 10
    assert balances(week_wallet) == (25_000 - 10_000, 0)
    assert_ledger_consistent()


def test_given_an_ingested_file_when_ingested_again_then_nothing_moves(tmp_path, week_wallet):
    clearing_file = ingest_rows(tmp_path / "inbox", [force("txn-1"), force("txn-2")])
    before = postings()
    again = clearing.ingest_clearing_file(clearing_file=clearing_file)
    assert again.status == "ingested"
    assert postings() == before
    assert ClearingLine.objects.count() == 2


# --- the parser keeps one row in memory ---------------------------------------------------------


class GeneratedFile(io.RawIOBase):
    """A clearing file of `count` rows made on the fly, so the test holds none of it either."""

    def __init__(self, count: int) -> None:
        self._rows = self._lines(count)
        self._pending = b""

    @staticmethod
    def _lines(count: int):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(HEADER)
        for n in range(count):
            writer.writerow(force(f"txn-{n:08d}", "1.00"))
            if n % 1000 == 999:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        writer.writerow(["TRAILER", str(count), *[""] * 6, f"{count}.00", "D", *[""] * 6])
        yield buffer.getvalue().encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = next(self._rows, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


def test_given_200k_lines_when_parsed_then_rows_stream_and_memory_stays_flat():
    # given
    stream = io.TextIOWrapper(io.BufferedReader(GeneratedFile(200_000)), "utf-8", newline="")
    rows = read_rows(stream)
    assert inspect.isgenerator(rows)
    # when
    tracemalloc.start()
    counts, total = Counter(), clearing.ControlTotals()
    for parsed in rows:
        counts[type(parsed)] += 1
        total.add(parsed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # then: every row read, the trailer checked, and far less memory than the rows would take
    assert counts == {ClearingRow: 200_000, Trailer: 1}
    assert BadRow not in counts
    assert total.trailer_check() == ("ok", "")
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"


# --- two ingestions racing for one hold ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_given_two_files_when_ingested_at_once_for_one_hold_then_it_is_consumed_once(
    tmp_path, week_wallet
):
    # given: a 40.00 hold; two files, each with a final 40.00 clearing naming it
    authorize(week_wallet, txn="txn-h-auth", amount_minor=4_000)
    files = [clearing_csv([row(f"txn-h-clr{n}", "40.00", preceding="txn-h-auth")]) for n in (1, 2)]
    barrier, errors = threading.Barrier(2), []

    def ingest(n: int) -> None:
        barrier.wait()
        try:
            ingest_bytes(tmp_path / f"inbox{n}", files[n], name=f"clearing_demo_20260509_{n}.csv")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=ingest, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then: the held 40.00 went to one clearing; the other was charged from available
    assert errors == []
    assert sorted(Clearing.objects.values_list("from_hold_minor", "excess_minor")) == [
        (0, 4_000),
        (4_000, 0),
    ]
    assert balances(week_wallet) == (25_000 - 8_000, 0)
    assert_ledger_consistent()
