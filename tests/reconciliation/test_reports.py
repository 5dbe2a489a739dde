"""The reconciliation report per file and per day: it ties the file to the ledger; the admin
shows it and serves it as CSV to staff only."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from reconciliation.reports import daily_report, file_report
from tests.reconciliation.clearing_helpers import authorize, ingest_rows, row
from tests.reconciliation.conftest import receive, transaction

pytestmark = pytest.mark.django_db
TODAY = timezone.now().date()


@pytest.fixture
def day_file(tmp_path, week_wallet):
    """A day with every kind of line: matched, partial, force post, refund, replayed, queued."""
    authorize(week_wallet, txn="txn-a-auth", amount_minor=15_000)
    authorize(week_wallet, txn="txn-c-auth", amount_minor=2_000, mcc="5812", merchant="CAFE")
    receive(transaction("webhook_force_post"))  # txn-d-force, 12.00, posted by webhook
    return ingest_rows(
        tmp_path / "inbox",
        name=f"clearing_demo_{TODAY:%Y%m%d}_1.csv",
        rows=[
            row("txn-a-clr1", "120.00", original="jit-a-auth", final="false"),
            row("txn-c-clr", "24.00", preceding="txn-c-auth", mcc="5812"),
            row("txn-d-force", "12.00", jit="", final="", mcc="7523"),
            row("txn-refund", "5.00", record_type="refund", jit="", final=""),
            row("txn-lost", "7.00", preceding="txn-lost-auth", mcc="1111", merchant="X"),
            row("txn-bad", "1,00", jit=""),
        ],
    )


def test_given_a_days_file_when_reported_then_lines_methods_and_amounts_tie_out(day_file):
    # when
    report = file_report(clearing_file=day_file)
    # then
    assert report.lines == 6
    assert report.by_outcome == {"exception": 2, "posted": 3, "replayed": 1}
    assert report.by_method == {"-": 1, "jit_token": 1, "preceding_token": 1, "refund": 1}
    assert report.by_error == {"bad_amount": 1, "unmatched_clearing": 1}
    assert report.exceptions_by_kind == {"bad_file_line": 1, "unmatched_clearing": 1}
    (usd,) = report.currencies
    assert (usd.debit_minor, usd.credit_minor) == (16_300, 500)
    assert usd.matched_minor == 12_000 + 2_400 + 1_200 - 500
    assert usd.unmatched_minor == 700
    assert usd.ledger_minor == usd.matched_minor
    assert usd.net_owed_minor == 15_800
    assert (usd.difference_minor, usd.lines_vs_file_minor) == (0, 0)
    assert report.ties_out


def test_given_a_days_files_when_the_daily_report_is_made_then_it_adds_them_up(day_file):
    report = daily_report(day=TODAY)
    assert [clearing_file.pk for clearing_file in report.files] == [day_file.pk]
    assert report.ties_out
    assert report.lines == 6
    assert report.exceptions_opened_by_kind == {"bad_file_line": 1, "unmatched_clearing": 1}
    assert daily_report(day=TODAY - timedelta(days=1)).lines == 0


def test_given_ops_when_opening_the_file_then_the_report_is_on_the_page(client, ops_user, day_file):
    client.force_login(ops_user)
    response = client.get(f"/admin/reconciliation/clearingfile/{day_file.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Reconciliation report" in page
    assert "158.00 USD" in page  # net settlement owed
    assert f"/admin/reconciliation/clearingfile/{day_file.pk}/report.csv" in page


def test_given_support_when_downloading_the_day_csv_then_the_report_rows(
    client, support_user, day_file
):
    client.force_login(support_user)
    response = client.get(f"/admin/reconciliation/clearingfile/report/{TODAY}.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["section", "metric", "currency", "value"]
    assert ["amounts", "net_settlement_owed", "USD", "158.00"] in rows
    assert ["amounts", "tie_out_difference", "USD", "0.00"] in rows
    assert ["amounts", "ties_out", "USD", "yes"] in rows
    page = client.get(f"/admin/reconciliation/clearingfile/report/{TODAY}/")
    assert page.status_code == 200
    assert day_file.name in page.content.decode()


def test_given_anonymous_when_downloading_a_report_then_sent_to_login(client, day_file):
    response = client.get(f"/admin/reconciliation/clearingfile/{day_file.pk}/report.csv")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_given_a_bad_day_when_downloading_then_404(client, ops_user, db):
    client.force_login(ops_user)
    assert client.get("/admin/reconciliation/clearingfile/report/yesterday.csv").status_code == 404


def test_given_lines_when_listing_them_in_the_admin_then_filters_work(client, ops_user, day_file):
    client.force_login(ops_user)
    response = client.get("/admin/reconciliation/clearingline/?outcome=exception&method=none")
    assert response.status_code == 200
    assert "txn-lost" in response.content.decode()
