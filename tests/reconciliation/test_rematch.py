"""Rematching an unmatched clearing to a hold ops choose: posted once under Marqeta's token,
refused for a hold it cannot belong to or a clearing that already moved money, audited, and
worked from the admin by Ops only.

The clearings come in as production sends them (a clearing file ingested for real, a webhook
applied until its retries run out); the holds are placed by the ledger's own service.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from cards.selectors import funding_account_for
from ledger.errors import ReasonRequired
from ledger.models import AuditEvent, Clearing, HoldStatus
from reconciliation import services
from reconciliation.errors import (
    AlreadyRematched,
    ClearingAlreadyPosted,
    ExceptionAlreadyResolved,
    RematchNotSupported,
    WrongHoldForRematch,
)
from reconciliation.models import ClearingLine, ReconciliationException, WebhookEvent
from tests.cards.factories import CardFactory
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.reconciliation.clearing_helpers import authorize, ingest_rows, postings, row
from tests.reconciliation.conftest import envelope, settled, store, transaction

pytestmark = pytest.mark.django_db
QUEUE = "/admin/reconciliation/reconciliationexception/"
CAFE = {"mcc": "5812", "merchant": "HARBOR CAFE"}


def unmatched_line(tmp_path, amount: str = "44.00", *, name: str = "", **overrides) -> None:
    """A line naming an authorization we never saw, at a merchant none of our holds has."""
    line = row("txn-x-clr", amount, preceding="txn-x-auth", jit="", **overrides)
    ingest_rows(tmp_path / "inbox", [line], **({"name": name} if name else {}))


def rematch_audits(exception: ReconciliationException) -> list[str]:
    rows = AuditEvent.objects.filter(
        target_type="reconciliation.reconciliationexception", target_id=str(exception.pk)
    )
    return list(rows.exclude(action="open_exception").values_list("action", flat=True))


@pytest.fixture
def cafe_hold(week_wallet):
    """40.00 held at a cafe: 210.00 available, 40.00 held."""
    return authorize(week_wallet, txn="txn-c-auth", amount_minor=4_000, **CAFE)


@pytest.fixture
def unmatched(tmp_path, week_wallet, cafe_hold) -> ReconciliationException:
    """The car rental's 44.00 clearing names txn-x-auth: nothing matched, nothing moved."""
    unmatched_line(tmp_path)
    assert ClearingLine.objects.get().outcome == "exception"
    return ReconciliationException.objects.get(kind="unmatched_clearing")


@pytest.fixture
def other_wallet_hold(db):
    """Another cardholder's open hold (another program, too)."""
    card = CardFactory()
    wallet = funding_account_for(cardholder=card.cardholder).wallet
    return authorize(wallet, txn="txn-o-auth", amount_minor=4_000, card=card.token, **CAFE)


# --- the service --------------------------------------------------------------------------------


def test_given_an_unmatched_line_when_rematched_then_charged_to_the_hold_and_resolved(
    unmatched, cafe_hold, week_wallet, ops_user
):
    # given
    assert (balances(week_wallet), settled(week_wallet)) == ((21_000, 4_000), 0)
    # when: ops say the 44.00 is the cafe's 40.00 plus a tip
    done = services.rematch_clearing(
        exception=unmatched, hold=cafe_hold, actor=ops_user, reason="same visit, 4.00 tip"
    )
    # then: the hold is used up, the tip comes from available, the network is owed 44.00
    assert not done.replayed
    clearing = Clearing.objects.get()
    assert (clearing.clearing_key, clearing.hold, clearing.amount_minor) == (
        "txn-x-clr",
        cafe_hold,
        4_400,
    )
    assert (clearing.from_hold_minor, clearing.excess_minor, clearing.released_minor) == (
        4_000,
        400,
        0,
    )
    assert balances(week_wallet) == (21_000 - 400, 0)
    assert settled(week_wallet) == 4_400
    cafe_hold.refresh_from_db()
    assert cafe_hold.status == HoldStatus.CLOSED
    exception = done.exception
    assert (exception.state, exception.resolved_by) == ("resolved", ops_user)
    assert exception.resolution == "rematched to jit:jit-c-auth: same visit, 4.00 tip"
    assert (exception.hold, exception.clearing, exception.ledger_transaction) == (
        cafe_hold,
        clearing,
        clearing.posted_by,
    )
    assert exception.details["rematch"]["source"].endswith("line 2")
    assert clearing.posted_by.actor == "ops:maker"
    assert rematch_audits(exception) == ["rematch_clearing", "resolve_exception"]
    assert ClearingLine.objects.get().outcome == "exception"  # the file's record is kept
    assert_ledger_consistent()


def test_given_a_partial_line_when_rematched_then_the_rest_stays_held(
    tmp_path, cafe_hold, week_wallet, ops_user
):
    # given: 25.00 of the cafe's 40.00, not final
    unmatched_line(tmp_path, "25.00", final="false")
    exception = ReconciliationException.objects.get(kind="unmatched_clearing")
    # when
    services.rematch_clearing(exception=exception, hold=cafe_hold, actor=ops_user, reason="split")
    # then
    assert balances(week_wallet) == (21_000, 1_500)
    assert settled(week_wallet) == 2_500
    cafe_hold.refresh_from_db()
    assert (cafe_hold.status, cafe_hold.remaining_minor) == (HoldStatus.OPEN, 1_500)
    assert_ledger_consistent()


def test_given_a_rematch_when_called_again_then_nothing_changes_and_it_says_so(
    unmatched, cafe_hold, week_wallet, ops_user
):
    # given
    first = services.rematch_clearing(
        exception=unmatched, hold=cafe_hold, actor=ops_user, reason="tip"
    )
    before = (postings(), balances(week_wallet), AuditEvent.objects.count())
    # when
    again = services.rematch_clearing(
        exception=unmatched, hold=cafe_hold, actor=ops_user, reason="tip"
    )
    # then
    assert again.replayed
    assert again.clearing == first.clearing
    assert (postings(), balances(week_wallet), AuditEvent.objects.count()) == before


def test_given_a_rematch_when_the_line_is_sent_again_then_it_replays(
    tmp_path, unmatched, cafe_hold, week_wallet, ops_user
):
    # given
    services.rematch_clearing(exception=unmatched, hold=cafe_hold, actor=ops_user, reason="tip")
    before = (postings(), balances(week_wallet))
    # when: tomorrow's file carries the same line again
    unmatched_line(tmp_path, name="clearing_demo_20260510_1.csv", settlement_date="2026-05-10")
    # then: found posted under its token; nothing moves, nothing new is queued
    resent = ClearingLine.objects.order_by("pk").last()
    assert (resent.outcome, resent.clearing) == ("replayed", Clearing.objects.get())
    assert (postings(), balances(week_wallet)) == before
    assert ReconciliationException.objects.count() == 1


def test_given_a_rematch_when_asked_for_another_hold_then_refused(
    unmatched, cafe_hold, week_wallet, ops_user
):
    # given
    services.rematch_clearing(exception=unmatched, hold=cafe_hold, actor=ops_user, reason="tip")
    other = authorize(week_wallet, txn="txn-d-auth", amount_minor=1_000, **CAFE)
    before = (postings(), balances(week_wallet))
    # when / then
    with pytest.raises(AlreadyRematched):
        services.rematch_clearing(exception=unmatched, hold=other, actor=ops_user, reason="no")
    assert (postings(), balances(week_wallet)) == before


def test_given_another_cardholders_hold_when_rematching_then_refused_and_nothing_moves(
    unmatched, other_wallet_hold, week_wallet, ops_user
):
    # given
    before = (postings(), balances(week_wallet), balances(other_wallet_hold.wallet))
    # when
    with pytest.raises(WrongHoldForRematch) as refused:
        services.rematch_clearing(
            exception=unmatched, hold=other_wallet_hold, actor=ops_user, reason="looks alike"
        )
    # then
    assert refused.value.details["why"] == "another_wallet"
    assert "another cardholder's hold" in refused.value.message
    assert (postings(), balances(week_wallet), balances(other_wallet_hold.wallet)) == before
    unmatched.refresh_from_db()
    assert (unmatched.state, unmatched.clearing) == ("open", None)
    assert rematch_audits(unmatched) == []


def test_given_an_incremental_when_rematching_then_refused_naming_its_authorization(
    unmatched, cafe_hold, week_wallet, ops_user
):
    # given
    incremental = authorize(
        week_wallet, txn="txn-c-incr", amount_minor=500, original=cafe_hold, **CAFE
    )
    before = postings()
    # when
    with pytest.raises(WrongHoldForRematch) as refused:
        services.rematch_clearing(
            exception=unmatched, hold=incremental, actor=ops_user, reason="the tip"
        )
    # then
    assert refused.value.details["why"] == "incremental"
    assert "jit:jit-c-auth" in refused.value.message
    assert postings() == before


def test_given_a_fuzzy_match_already_posted_when_rematching_then_refused_as_a_correction(
    tmp_path, week_wallet, cafe_hold, ops_user
):
    # given: a car-rental hold takes a car-rental line by a fuzzy match (money moved)
    authorize(week_wallet, txn="txn-r-auth", jit="jit-r-other", amount_minor=4_000)
    unmatched_line(tmp_path, settlement_date=timezone.now().date().isoformat())
    flagged = ReconciliationException.objects.get(kind="unmatched_clearing")
    assert flagged.details["review"] == "fuzzy match, review"
    before = (postings(), balances(week_wallet))
    # when: ops think it was the cafe's
    with pytest.raises(ClearingAlreadyPosted) as refused:
        services.rematch_clearing(
            exception=flagged, hold=cafe_hold, actor=ops_user, reason="it was the cafe"
        )
    # then
    assert "propose_adjustment" in refused.value.message
    assert (postings(), balances(week_wallet)) == before
    flagged.refresh_from_db()
    assert flagged.state == "open"


@pytest.mark.parametrize("reason", ["", "   "])
def test_given_no_reason_when_rematching_then_refused(
    unmatched, cafe_hold, week_wallet, ops_user, reason
):
    before = postings()
    with pytest.raises(ReasonRequired):
        services.rematch_clearing(
            exception=unmatched, hold=cafe_hold, actor=ops_user, reason=reason
        )
    assert postings() == before


def test_given_another_kind_of_exception_when_rematching_then_not_supported(cafe_hold, ops_user):
    drift = services.open_exception(kind="cache_drift", dedupe_key="cache_drift:1")
    with pytest.raises(RematchNotSupported):
        services.rematch_clearing(exception=drift, hold=cafe_hold, actor=ops_user, reason="x")


def test_given_an_exception_resolved_otherwise_when_rematching_then_refused(
    unmatched, cafe_hold, ops_user
):
    services.resolve_exception(exception=unmatched, actor=ops_user, resolution="merchant refunded")
    with pytest.raises(ExceptionAlreadyResolved):
        services.rematch_clearing(exception=unmatched, hold=cafe_hold, actor=ops_user, reason="x")
    assert not Clearing.objects.exists()


def test_given_a_clearing_webhook_whose_parent_never_came_when_rematched_then_posted_once(
    tmp_path, week_wallet, cafe_hold, ops_user
):
    # given: a final 40.00 clearing webhook naming an authorization we never stored
    event = transaction(
        "webhook_clearing_1",
        token="txn-w-clr",
        preceding_related_transaction_token="txn-w-auth",
        amount=Decimal("40.00"),
        is_final_clearing=True,
        jit={"token": "jit-w-clr", "amount": "40.00", "original_jit_funding_token": "jit-w-auth"},
    )
    (stored,) = store(event)
    services.apply_webhook_event(event=stored, last_attempt=True)
    exception = ReconciliationException.objects.get(kind="out_of_order_unresolved")
    # when
    services.rematch_clearing(exception=exception, hold=cafe_hold, actor=ops_user, reason="same")
    # then: charged from the hold; Marqeta retrying the webhook, or the file, changes nothing
    assert balances(week_wallet) == (21_000, 0)
    services.record_webhook_envelope(body=envelope(event))
    ingest_rows(tmp_path / "inbox", [row("txn-w-clr", "40.00", preceding="txn-w-auth", jit="")])
    assert ClearingLine.objects.get().outcome == "replayed"
    assert WebhookEvent.objects.get().status == "failed"  # what applying it did, kept
    assert (Clearing.objects.count(), balances(week_wallet), settled(week_wallet)) == (
        1,
        (21_000, 0),
        4_000,
    )
    assert_ledger_consistent()


def test_given_a_rematched_line_when_its_webhook_comes_late_then_never_charged_twice(
    unmatched, cafe_hold, week_wallet, ops_user
):
    # given
    services.rematch_clearing(exception=unmatched, hold=cafe_hold, actor=ops_user, reason="tip")
    before = (postings(), balances(week_wallet))
    # when: the webhook of the same clearing, still naming the authorization we never saw
    (stored,) = store(
        transaction(
            "webhook_clearing_1",
            token="txn-x-clr",
            preceding_related_transaction_token="txn-x-auth",
            amount=Decimal("44.00"),
            jit={"token": "jit-x-clr", "amount": "44.00", "original_jit_funding_token": "jit-x"},
        )
    )
    applied = services.apply_webhook_event(event=stored, last_attempt=True)
    # then: it replays the rematch's posting: nothing moves, nothing is queued
    assert applied.status == "applied"
    assert (postings(), balances(week_wallet)) == before
    assert not ReconciliationException.objects.filter(kind="out_of_order_unresolved").exists()


def test_given_a_webhook_that_is_not_a_clearing_when_rematching_then_not_supported(
    week_wallet, cafe_hold, ops_user
):
    # given: a reversal of an authorization we never held, queued as out of order
    (stored,) = store(
        transaction("webhook_authorization", token="txn-r", type="authorization.reversal")
    )
    services.apply_webhook_event(event=stored, last_attempt=True)
    exception = ReconciliationException.objects.get()
    # when / then
    with pytest.raises(RematchNotSupported):
        services.rematch_clearing(exception=exception, hold=cafe_hold, actor=ops_user, reason="x")
    assert not Clearing.objects.exists()


# --- the admin ----------------------------------------------------------------------------------


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rematch_url(exception: ReconciliationException) -> str:
    return f"{QUEUE}{exception.pk}/rematch/"


def test_given_ops_when_opening_the_rematch_page_then_only_this_wallets_holds_are_offered(
    unmatched, cafe_hold, other_wallet_hold, ops_user
):
    # when
    page = login(ops_user).get(rematch_url(unmatched))
    # then
    assert page.status_code == 200
    offered = [candidate.pk for candidate in page.context["candidates"]]
    assert offered == [cafe_hold.pk]
    text = page.content.decode()
    for shown in ("jit:jit-c-auth", "HARBOR CAFE (5812)", "40.00 USD"):
        assert shown in text
    assert "jit:jit-o-auth" not in text
    # and the search narrows them
    found = login(ops_user).get(rematch_url(unmatched), {"q": "no such merchant"})
    assert found.context["candidates"] == []
    by_amount = login(ops_user).get(rematch_url(unmatched), {"q": "40.00"})
    assert [candidate.pk for candidate in by_amount.context["candidates"]] == [cafe_hold.pk]


def test_given_ops_when_the_change_page_is_opened_then_it_offers_the_rematch_button(
    unmatched, ops_user, support_user
):
    assert (
        rematch_url(unmatched)
        in login(ops_user).get(f"{QUEUE}{unmatched.pk}/change/").content.decode()
    )
    assert (
        rematch_url(unmatched)
        not in login(support_user).get(f"{QUEUE}{unmatched.pk}/change/").content.decode()
    )


def test_given_ops_when_posting_the_rematch_form_then_charged_resolved_and_said(
    unmatched, cafe_hold, week_wallet, ops_user
):
    # when
    client = login(ops_user)
    form = {"hold": cafe_hold.pk, "reason": "same visit, tip"}
    response = client.post(rematch_url(unmatched), form, follow=True)
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert "charged 44.00 USD to jit:jit-c-auth" in page
    assert "4.00 USD from available" in page
    assert balances(week_wallet) == (20_600, 0)
    unmatched.refresh_from_db()
    assert unmatched.state == "resolved"
    # and again: nothing changes, and the page says so
    again = client.post(rematch_url(unmatched), form, follow=True).content.decode()
    assert "already rematched to jit:jit-c-auth: nothing changed" in again
    assert (Clearing.objects.count(), balances(week_wallet)) == (1, (20_600, 0))
    assert client.get(rematch_url(unmatched)).status_code == 302  # resolved: no form any more


def test_given_ops_when_choosing_another_wallets_hold_then_an_error_message_not_a_500(
    unmatched, other_wallet_hold, week_wallet, ops_user
):
    # when
    response = login(ops_user).post(
        rematch_url(unmatched), {"hold": other_wallet_hold.pk, "reason": "x"}, follow=True
    )
    # then
    assert response.status_code == 200
    assert "another cardholder&#x27;s hold" in response.content.decode()
    assert balances(week_wallet) == (21_000, 4_000)
    assert not Clearing.objects.exists()


def test_given_ops_when_the_form_has_no_reason_then_shown_again_and_nothing_moves(
    unmatched, cafe_hold, week_wallet, ops_user
):
    response = login(ops_user).post(rematch_url(unmatched), {"hold": cafe_hold.pk, "reason": ""})
    assert response.status_code == 200
    assert "Say why this hold is the right one." in response.content.decode()
    assert not Clearing.objects.exists()


def test_given_ops_when_the_queue_action_is_used_then_it_opens_the_rematch_page(
    unmatched, ops_user
):
    response = login(ops_user).post(
        QUEUE, {"action": "rematch_to_hold", "_selected_action": [unmatched.pk]}
    )
    assert (response.status_code, response["Location"]) == (302, rematch_url(unmatched))


def test_given_support_when_rematching_then_refused_and_nothing_moves(
    unmatched, cafe_hold, week_wallet, support_user
):
    # when
    client = login(support_user)
    page = client.get(rematch_url(unmatched))
    posted = client.post(rematch_url(unmatched), {"hold": cafe_hold.pk, "reason": "trying"})
    # then
    assert (page.status_code, posted.status_code) == (403, 403)
    assert balances(week_wallet) == (21_000, 4_000)
    unmatched.refresh_from_db()
    assert (unmatched.state, unmatched.clearing) == ("open", None)
