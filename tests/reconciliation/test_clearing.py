"""Clearing files applied to the ledger (MARQETA.md §12 with the §11 week): matching, posting,
replays of webhook postings, and refusals queued with their line numbers.

Holds are placed by the ledger's own service, as the gateway's ledger writer does
(`jit:<jit token>`, the Marqeta transaction token beside it); every money movement is asserted
on the cardholder's balances and on what the program owes the network.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ledger.models import Clearing, HoldStatus, Kind
from ledger.services import expire_hold
from reconciliation.models import ClearingFile, ClearingLine, ReconciliationException
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.reconciliation.clearing_helpers import (
    authorize,
    exception_lines,
    ingest_rows,
    kinds,
    postings,
    row,
)
from tests.reconciliation.conftest import receive, settled, transaction

pytestmark = pytest.mark.django_db
AUTH_A = {"preceding": "txn-a-auth", "original": "jit-a-auth"}
TODAY = timezone.now().date().isoformat()  # fuzzy matches look back from the settlement date


def outcomes() -> list[tuple[int, str, str, str]]:
    return list(
        ClearingLine.objects.order_by("line_number").values_list(
            "line_number", "outcome", "match_method", "error_code"
        )
    )


@pytest.fixture
def auth_a(week_wallet):
    """§11: auth A, 150.00 at a car rental, then an incremental of 50.00 (200.00 held)."""
    first = authorize(week_wallet, txn="txn-a-auth", amount_minor=15_000)
    authorize(week_wallet, txn="txn-a-incr", amount_minor=5_000, original=first)
    return first


def test_given_the_week_when_its_clearing_file_is_ingested_then_192_charged_nothing_held(
    tmp_path, week_wallet, auth_a
):
    # when: MARQETA.md §12's example, 120 + 60 (final, 20 released) + a 12.00 force post
    clearing_file = ingest_rows(
        tmp_path / "inbox",
        [
            row("txn-a-clr1", "120.00", final="false", **AUTH_A),
            row("txn-a-clr2", "60.00", released="20.00", **AUTH_A),
            row("txn-d-force", "12.00", final="", mcc="7523", merchant="CITY PARKING"),
        ],
    )
    # then
    assert (clearing_file.status, clearing_file.trailer_check) == ("ingested", "ok")
    assert (clearing_file.lines_total, clearing_file.lines_applied) == (3, 3)
    assert (clearing_file.debit_total_minor, clearing_file.credit_total_minor) == (19_200, 0)
    assert outcomes() == [
        (2, "posted", "jit_token", ""),
        (3, "posted", "jit_token", ""),
        (4, "posted", "force_post", ""),
    ]
    assert settled(week_wallet) == 19_200
    assert balances(week_wallet) == (25_000 - 19_200, 0)
    auth_a.refresh_from_db()
    assert auth_a.status == HoldStatus.CLOSED
    assert kinds() == []
    assert_ledger_consistent()


def test_given_no_jit_tokens_when_preceding_token_names_the_auth_then_matched_by_it(
    tmp_path, week_wallet, auth_a
):
    # when: partial (not final), leaving the rest held
    ingest_rows(
        tmp_path / "inbox", [row("txn-a-clr1", "50.00", preceding="txn-a-incr", final="false")]
    )
    # then: the incremental's token leads to the chain's root
    assert outcomes() == [(2, "posted", "preceding_token", "")]
    line = ClearingLine.objects.get()
    assert line.hold_id == auth_a.pk
    assert balances(week_wallet) == (5_000, 15_000)
    assert settled(week_wallet) == 5_000
    assert_ledger_consistent()


def test_given_a_hold_when_over_cleared_by_file_then_excess_from_available(tmp_path, week_wallet):
    # given: a 20.00 restaurant auth; the tip makes it 24.00
    authorize(week_wallet, txn="txn-c-auth", amount_minor=2_000, mcc="5812", merchant="CAFE")
    # when
    ingest_rows(tmp_path / "inbox", [row("txn-c-clr", "24.00", original="jit-c-auth", mcc="5812")])
    # then
    clearing = Clearing.objects.get()
    assert (clearing.from_hold_minor, clearing.excess_minor) == (2_000, 400)
    assert balances(week_wallet) == (25_000 - 2_400, 0)
    assert_ledger_consistent()


def test_given_multi_clearing_in_one_file_when_final_is_empty_then_only_the_last_releases(
    tmp_path, week_wallet, auth_a
):
    # when: two clearings of A with is_final_clearing empty (our rule: final unless a later
    # line of the file clears the same authorization)
    ingest_rows(
        tmp_path / "inbox",
        [
            row("txn-a-clr1", "100.00", final="", **AUTH_A),
            row("txn-a-clr2", "30.00", final="", **AUTH_A),
        ],
    )
    # then: the first kept the rest held, the second released it
    first, second = Clearing.objects.order_by("pk")
    assert (first.is_final, first.released_minor) == (False, 0)
    assert (second.is_final, second.released_minor) == (True, 7_000)
    assert balances(week_wallet) == (25_000 - 13_000, 0)
    assert settled(week_wallet) == 13_000
    assert_ledger_consistent()


def test_given_no_authorization_named_when_force_post_overdraws_then_posted_and_flagged(
    tmp_path, week_wallet
):
    # when: a force post bigger than the balance
    ingest_rows(tmp_path / "inbox", [row("txn-force", "300.00", jit="", mcc="7523")])
    # then
    assert outcomes() == [(2, "posted", "force_post", "")]
    assert balances(week_wallet) == (-5_000, 0)
    assert Clearing.objects.get().posted_by.kind == Kind.FORCE_POST
    assert kinds() == ["negative_balance"]
    assert_ledger_consistent()


def test_given_a_refund_line_when_ingested_then_credited(tmp_path, week_wallet):
    # when
    ingest_rows(
        tmp_path / "inbox", [row("txn-refund", "15.50", record_type="refund", jit="", final="")]
    )
    # then
    assert outcomes() == [(2, "posted", "refund", "")]
    assert balances(week_wallet) == (25_000 + 1_550, 0)
    assert settled(week_wallet) == -1_550
    assert_ledger_consistent()


def test_given_an_unfound_auth_when_a_similar_hold_is_open_then_fuzzy_matched_and_flagged(
    tmp_path, week_wallet
):
    # given: the hold has no token the file knows (e.g. placed by a stand-in under other keys)
    hold = authorize(week_wallet, txn="txn-other", jit="jit-other", amount_minor=4_000)
    # when: 44.00 (10% tip) names an authorization we never saw
    ingest_rows(
        tmp_path / "inbox",
        [row("txn-x-clr", "44.00", preceding="txn-x-auth", settlement_date=TODAY)],
    )
    # then: applied to the similar hold, and queued for review
    assert outcomes() == [(2, "posted", "fuzzy", "")]
    assert ClearingLine.objects.get().hold_id == hold.pk
    assert balances(week_wallet) == (25_000 - 4_400, 0)
    exception = ReconciliationException.objects.get()
    assert exception.kind == "unmatched_clearing"
    assert exception.details["review"] == "fuzzy match, review"
    assert (exception.hold_id, exception.details["line_number"]) == (hold.pk, 2)
    assert_ledger_consistent()


def test_given_an_unfound_auth_when_nothing_similar_then_not_posted_and_queued(
    tmp_path, week_wallet
):
    # given: an open hold at another merchant, far from the amount
    authorize(week_wallet, txn="txn-other", amount_minor=4_000, mcc="5812", merchant="CAFE")
    before = postings()
    # when
    clearing_file = ingest_rows(
        tmp_path / "inbox",
        [row("txn-x-clr", "90.00", preceding="txn-x-auth", settlement_date=TODAY)],
    )
    # then: nothing moved
    assert outcomes() == [(2, "exception", "", "unmatched_clearing")]
    assert (clearing_file.lines_applied, clearing_file.lines_failed) == (0, 1)
    assert postings() == before
    assert balances(week_wallet) == (21_000, 4_000)
    assert exception_lines() == [("unmatched_clearing", 2)]


def test_given_one_hold_when_two_lines_clear_it_then_the_held_money_is_taken_once(
    tmp_path, week_wallet
):
    # given: one 40.00 hold, two final clearings naming it (a network duplicate, two tokens)
    authorize(week_wallet, txn="txn-h-auth", amount_minor=4_000)
    # when
    ingest_rows(
        tmp_path / "inbox",
        [
            row("txn-h-clr1", "40.00", preceding="txn-h-auth"),
            row("txn-h-clr2", "40.00", preceding="txn-h-auth"),
        ],
    )
    # then: the second is charged from available, not from the (closed) hold
    first, second = Clearing.objects.order_by("pk")
    assert (first.from_hold_minor, second.from_hold_minor) == (4_000, 0)
    assert second.excess_minor == 4_000
    assert balances(week_wallet) == (25_000 - 8_000, 0)
    assert_ledger_consistent()


def test_given_two_fuzzy_lines_when_one_hold_fits_both_then_only_one_consumes_it(
    tmp_path, week_wallet
):
    # given
    hold = authorize(week_wallet, txn="txn-other", jit="jit-other", amount_minor=4_000)
    # when
    ingest_rows(
        tmp_path / "inbox",
        [
            row("txn-x-clr", "40.00", preceding="txn-x", settlement_date=TODAY),
            row("txn-y-clr", "40.00", preceding="txn-y", settlement_date=TODAY),
        ],
    )
    # then
    assert outcomes() == [
        (2, "posted", "fuzzy", ""),
        (3, "exception", "", "unmatched_clearing"),
    ]
    hold.refresh_from_db()
    assert hold.status == HoldStatus.CLOSED
    assert balances(week_wallet) == (21_000, 0)
    assert_ledger_consistent()


def test_given_an_expired_hold_when_the_clearing_line_comes_late_then_still_charged(
    tmp_path, week_wallet
):
    # given
    hold = authorize(week_wallet, txn="txn-e-auth", amount_minor=3_000)
    expire_hold(hold=hold)
    assert balances(week_wallet) == (25_000, 0)
    # when
    ingest_rows(tmp_path / "inbox", [row("txn-e-clr", "30.00", preceding="txn-e-auth")])
    # then
    clearing = Clearing.objects.get()
    assert (clearing.from_hold_minor, clearing.excess_minor) == (0, 3_000)
    assert balances(week_wallet) == (22_000, 0)
    hold.refresh_from_db()
    assert hold.status == HoldStatus.EXPIRED
    assert_ledger_consistent()


def test_given_a_webhook_posted_the_clearing_when_the_file_has_it_then_replayed(
    tmp_path, week_wallet
):
    # given: the force post of §11 Example 7 arrived by webhook first (token txn-d-force)
    receive(transaction("webhook_force_post"))
    before, owed = postings(), settled(week_wallet)
    # when
    clearing_file = ingest_rows(
        tmp_path / "inbox", [row("txn-d-force", "12.00", jit="", mcc="7523", final="")]
    )
    # then: nothing moved again
    assert outcomes() == [(2, "replayed", "", "")]
    assert (clearing_file.lines_applied, clearing_file.lines_replayed) == (1, 1)
    assert postings() == before
    assert settled(week_wallet) == owed
    line = ClearingLine.objects.get()
    assert line.clearing == Clearing.objects.get(clearing_key="txn-d-force")
    assert kinds() == []


def test_given_a_webhook_posted_another_amount_when_the_file_has_it_then_mismatch_kept(
    tmp_path, week_wallet
):
    # given
    receive(transaction("webhook_force_post"))
    before = balances(week_wallet)
    # when: the file says 13.00 where the webhook posted 12.00
    ingest_rows(tmp_path / "inbox", [row("txn-d-force", "13.00", jit="", mcc="7523", final="")])
    # then: never overwritten
    assert outcomes() == [(2, "exception", "", "amount_mismatch")]
    assert Clearing.objects.get(clearing_key="txn-d-force").amount_minor == 1_200
    assert balances(week_wallet) == before
    exception = ReconciliationException.objects.get(kind="amount_mismatch")
    assert exception.amount_minor == 100
    assert exception.details["posted_amount_minor"] == 1_200
    assert exception.clearing.clearing_key == "txn-d-force"


def test_given_a_card_we_do_not_have_when_ingested_then_unknown_card_and_nothing_moved(
    tmp_path, week_wallet
):
    before = postings()
    ingest_rows(tmp_path / "inbox", [row("txn-u", "10.00", card="card_nope", user="", jit="")])
    assert outcomes() == [(2, "exception", "", "unknown_card")]
    assert exception_lines() == [("unknown_card", 2)]
    assert postings() == before


def test_given_a_line_in_another_currency_when_ingested_then_currency_mismatch(
    tmp_path, week_wallet
):
    before = balances(week_wallet)
    ingest_rows(tmp_path / "inbox", [row("txn-eur", "10.00", currency="EUR", jit="")])
    assert outcomes() == [(2, "exception", "", "currency_mismatch")]
    assert exception_lines() == [("currency_mismatch", 2)]
    assert balances(week_wallet) == before


def test_given_a_token_twice_in_one_file_when_ingested_then_once_posted_once_duplicate(
    tmp_path, week_wallet
):
    ingest_rows(
        tmp_path / "inbox",
        [row("txn-dup", "10.00", jit="", final=""), row("txn-dup", "10.00", jit="", final="")],
    )
    assert outcomes() == [(2, "posted", "force_post", ""), (3, "exception", "", "duplicate")]
    assert balances(week_wallet) == (24_000, 0)
    assert exception_lines() == [("duplicate", 3)]


def test_given_a_line_applied_by_an_earlier_file_when_a_new_file_repeats_it_then_replayed(
    tmp_path, week_wallet
):
    # given
    ingest_rows(tmp_path / "inbox", [row("txn-f", "10.00", jit="", final="")])
    # when: a corrected file (other bytes) carries the same line and a new one
    second = ingest_rows(
        tmp_path / "inbox",
        [row("txn-f", "10.00", jit="", final=""), row("txn-g", "5.00", jit="", final="")],
        name="clearing_demo_20260509_2.csv",
    )
    # then
    assert second.lines_replayed == 1
    assert list(second.lines.order_by("line_number").values_list("outcome", flat=True)) == [
        "replayed",
        "posted",
    ]
    assert balances(week_wallet) == (23_500, 0)
    assert ClearingFile.objects.count() == 2
    assert_ledger_consistent()


def test_given_a_hold_of_another_cardholder_when_a_line_names_it_then_not_posted(
    tmp_path, week_wallet, wallet
):
    # given: the token names a hold of another wallet (`wallet` is another cardholder's)
    authorize(wallet, txn="txn-theirs", amount_minor=1_000, card="card_other")
    before = postings()
    # when
    ingest_rows(tmp_path / "inbox", [row("txn-z", "10.00", preceding="txn-theirs")])
    # then
    assert outcomes() == [(2, "exception", "", "unmatched_clearing")]
    assert postings() == before


def test_given_an_old_hold_when_outside_the_fuzzy_window_then_not_matched(
    tmp_path, week_wallet, settings
):
    # given: a similar hold placed today
    settings.CLEARING_FUZZY_WINDOW_DAYS = 7
    authorize(week_wallet, txn="txn-other", jit="jit-other", amount_minor=4_000)
    # when: the line settles 8 days later (the hold is older than the window)
    later = (timezone.now() + timedelta(days=8)).date().isoformat()
    ingest_rows(
        tmp_path / "inbox", [row("txn-x", "40.00", preceding="txn-x-auth", settlement_date=later)]
    )
    # then
    assert outcomes() == [(2, "exception", "", "unmatched_clearing")]
