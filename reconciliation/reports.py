"""Reconciliation reports, per clearing file and per settlement day (selectors: read only).

    file_report(*, clearing_file) -> ClearingReport
    daily_report(*, day) -> ClearingReport        the files settled on `day`, added up
    report_csv_rows(report) -> rows               what the admin's CSV download writes

Per currency: lines by outcome, matched lines by method, amounts matched and not, exceptions
by kind, the net settlement owed (D - C) and the **tie-out**: for the lines the ledger has
(posted by the file or found posted before it), the file's amounts against what the ledger's
postings moved on the program's `settlement_payable` account (read from the entries, not from
the lines), whose difference must be zero; lines not in the ledger are exceptions, listed with
their total. The file's own totals (summed while checking the trailer) must equal the lines'.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import connection
from django.db.models import Count, Q, Sum

from ledger.money import format_money
from reconciliation.models import ClearingFile, ClearingLine, ReconciliationException

IN_LEDGER = (ClearingLine.Outcome.POSTED, ClearingLine.Outcome.REPLAYED)
LEDGER_SQL = """
    SELECT l.currency_code, l.outcome IN ('posted', 'replayed'), -SUM(e.amount_minor)
    FROM reconciliation_clearingline l
    JOIN ledger_ledgerentry e ON e.transaction_id = l.ledger_transaction_id
    JOIN ledger_account a ON a.id = e.account_id AND a.kind = 'settlement_payable'
    WHERE l.file_id = ANY(%s)
    GROUP BY 1, 2
"""


@dataclass
class CurrencyTieOut:
    """One currency's side of a report; amounts in minor units, D - C where signed."""

    currency_code: str
    debit_minor: int = 0  # readable D lines
    credit_minor: int = 0  # readable C lines
    matched_minor: int = 0  # D - C of the lines in the ledger
    unmatched_minor: int = 0  # D - C of the lines not in the ledger (exceptions)
    resent_minor: int = 0  # D - C of lines another file had already applied
    ledger_minor: int = 0  # what the ledger moved for the lines in the ledger
    ledger_of_unmatched_minor: int = 0  # postings found for lines queued (amount mismatch)
    file_debit_minor: int = 0  # the file's own totals, from the trailer check
    file_credit_minor: int = 0

    @property
    def file_net_minor(self) -> int:
        return self.debit_minor - self.credit_minor

    @property
    def net_owed_minor(self) -> int:
        """What the program owes the network for this settlement (re-sent lines once)."""
        return self.file_net_minor - self.resent_minor

    @property
    def difference_minor(self) -> int:
        """Matched lines against the ledger: zero when the file ties out."""
        return self.matched_minor - self.ledger_minor

    @property
    def lines_vs_file_minor(self) -> int:
        """The lines against the file's own totals: zero unless a line was lost."""
        return self.file_net_minor - (self.file_debit_minor - self.file_credit_minor)

    @property
    def ties_out(self) -> bool:
        return self.difference_minor == 0 and self.lines_vs_file_minor == 0

    @property
    def amount_rows(self) -> list[tuple[str, str]]:
        """(label, amount) for the admin page."""
        return [
            ("debits (D)", self.money(self.debit_minor)),
            ("credits (C)", self.money(self.credit_minor)),
            ("net settlement owed (D - C, re-sent lines once)", self.money(self.net_owed_minor)),
            ("matched: lines in the ledger (D - C)", self.money(self.matched_minor)),
            ("unmatched: lines queued as exceptions (D - C)", self.money(self.unmatched_minor)),
            (
                "ledger: settlement payable moved for the matched lines",
                self.money(self.ledger_minor),
            ),
            ("tie-out difference (matched - ledger)", self.money(self.difference_minor)),
            ("lines - the file's own totals", self.money(self.lines_vs_file_minor)),
        ]

    def money(self, amount_minor: int) -> str:
        try:
            return format_money(amount_minor, self.currency_code)
        except Exception:  # noqa: BLE001 - an unknown currency shows its minor units
            return f"{amount_minor} {self.currency_code}".strip()


@dataclass
class ClearingReport:
    title: str
    files: list[ClearingFile]
    lines: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_method: dict[str, int] = field(default_factory=dict)
    by_error: dict[str, int] = field(default_factory=dict)
    exceptions_by_kind: dict[str, int] = field(default_factory=dict)
    exceptions_opened_by_kind: dict[str, int] = field(default_factory=dict)  # daily: all
    currencies: list[CurrencyTieOut] = field(default_factory=list)

    @property
    def ties_out(self) -> bool:
        return all(currency.ties_out for currency in self.currencies)

    @property
    def matched(self) -> int:
        return sum(self.by_outcome.get(outcome, 0) for outcome in IN_LEDGER)


def _counts(rows: Iterable[dict[str, Any]], key: str) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row[key] or "-"] += row["lines"]
    return dict(sorted(counts.items()))


def _build(title: str, files: list[ClearingFile]) -> ClearingReport:
    file_ids = [clearing_file.pk for clearing_file in files]
    report = ClearingReport(title=title, files=files)
    lines = ClearingLine.objects.filter(file_id__in=file_ids)
    groups = list(
        lines.values("currency_code", "outcome", "match_method", "debit_credit", "error_code")
        .annotate(
            lines=Count("pk"),
            amount=Sum("amount_minor"),
            resent=Count("pk", filter=Q(line_key__startswith="repeat:", outcome="replayed")),
            resent_amount=Sum(
                "amount_minor", filter=Q(line_key__startswith="repeat:", outcome="replayed")
            ),
        )
        .order_by()
    )
    report.lines = sum(group["lines"] for group in groups)
    report.by_outcome = _counts(groups, "outcome")
    report.by_method = _counts([g for g in groups if g["outcome"] in IN_LEDGER], "match_method")
    report.by_error = _counts([g for g in groups if g["outcome"] not in IN_LEDGER], "error_code")
    currencies: dict[str, CurrencyTieOut] = {}
    for group in groups:
        if group["amount"] is None or not group["currency_code"]:
            continue  # an unreadable line: counted, and queued as bad_file_line
        tie = currencies.setdefault(group["currency_code"], CurrencyTieOut(group["currency_code"]))
        sign = -1 if group["debit_credit"] == "C" else 1
        if sign > 0:
            tie.debit_minor += group["amount"]
        else:
            tie.credit_minor += group["amount"]
        if group["outcome"] in IN_LEDGER:
            tie.matched_minor += sign * group["amount"]
        else:
            tie.unmatched_minor += sign * group["amount"]
        tie.resent_minor += sign * (group["resent_amount"] or 0)
    with connection.cursor() as cursor:
        cursor.execute(LEDGER_SQL, [file_ids])
        for currency_code, in_ledger, moved in cursor.fetchall():
            tie = currencies.setdefault(currency_code, CurrencyTieOut(currency_code))
            if in_ledger:
                tie.ledger_minor += moved
            else:
                tie.ledger_of_unmatched_minor += moved
    for clearing_file in files:
        for currency_code, totals in (clearing_file.totals or {}).items():
            tie = currencies.setdefault(currency_code, CurrencyTieOut(currency_code))
            tie.file_debit_minor += totals.get("debit_minor", 0)
            tie.file_credit_minor += totals.get("credit_minor", 0)
    report.currencies = [currencies[code] for code in sorted(currencies)]
    exceptions = ReconciliationException.objects.filter(details__clearing_file__in=file_ids)
    report.exceptions_by_kind = dict(
        exceptions.values_list("kind").annotate(n=Count("pk")).order_by("kind")
    )
    return report


def file_report(*, clearing_file: ClearingFile) -> ClearingReport:
    return _build(f"Clearing file {clearing_file.name}", [clearing_file])


def daily_report(*, day: date) -> ClearingReport:
    """The files whose settlement date is `day`, plus every exception opened that day."""
    files = list(ClearingFile.objects.filter(settlement_date=day).order_by("pk"))
    report = _build(f"Clearing files settled on {day.isoformat()}", files)
    opened = ReconciliationException.objects.filter(created_at__date=day)
    report.exceptions_opened_by_kind = dict(
        opened.values_list("kind").annotate(n=Count("pk")).order_by("kind")
    )
    return report


def report_csv_rows(report: ClearingReport) -> list[list[str]]:
    """`section, metric, currency, value` rows (amounts as decimal strings)."""
    rows = [["section", "metric", "currency", "value"], ["report", "title", "", report.title]]
    for clearing_file in report.files:
        rows.append(["file", clearing_file.name, "", f"{clearing_file.status} #{clearing_file.pk}"])
    rows.append(["lines", "total", "", str(report.lines)])
    rows += [
        ["lines", f"outcome:{key}", "", str(value)] for key, value in report.by_outcome.items()
    ]
    rows += [
        ["matched", f"method:{key}", "", str(value)] for key, value in report.by_method.items()
    ]
    rows += [["not_matched", f"error:{k}", "", str(v)] for k, v in report.by_error.items()]
    rows += [["exceptions", k, "", str(v)] for k, v in report.exceptions_by_kind.items()]
    rows += [["opened_today", k, "", str(v)] for k, v in report.exceptions_opened_by_kind.items()]
    for tie in report.currencies:
        amounts = {
            "debit": tie.debit_minor,
            "credit": tie.credit_minor,
            "net_settlement_owed": tie.net_owed_minor,
            "matched": tie.matched_minor,
            "unmatched": tie.unmatched_minor,
            "ledger_for_matched": tie.ledger_minor,
            "tie_out_difference": tie.difference_minor,
            "lines_vs_file_totals": tie.lines_vs_file_minor,
        }
        for metric, amount_minor in amounts.items():
            value = tie.money(amount_minor).rsplit(" ", 1)[0]
            rows.append(["amounts", metric, tie.currency_code, value])
        rows.append(["amounts", "ties_out", tie.currency_code, "yes" if tie.ties_out else "NO"])
    return rows
