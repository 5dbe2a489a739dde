"""The card history page: support's one timeline of a card, in words, money and local time."""

from __future__ import annotations

import pytest

from cards.models import Program
from jit.outbox import drain_outbox
from ledger.models import Hold
from ledger.services import release_hold
from tests.admin.conftest import authorize, login

pytestmark = pytest.mark.django_db


def history_url(card) -> str:
    return f"/admin/cards/card/{card.pk}/history/"


def test_given_a_decline_when_support_opens_the_history_then_it_names_the_limit(
    support_user, card_with_decline
):
    # when
    response = login(support_user).get(history_url(card_with_decline))
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert "declined: daily spend limit, 10.00 USD of 30.00 USD remaining" in page
    assert "AMOUNT_LIMIT_EXCEEDED" in page  # Marqeta's reason, next to ours
    assert "approved: approved" in page
    assert "80.00 USD" in page  # the running available balance after the approval
    assert "drops off" in page  # the open hold says when it goes


def test_given_limits_when_history_opened_then_remaining_amount_now_is_shown(
    ops_user, card_with_decline
):
    response = login(ops_user).get(history_url(card_with_decline))
    limits = response.context["limits"]
    assert [(row["window"], row["remaining_amount"]) for row in limits] == [("day", "10.00 USD")]
    assert limits[0]["used_amount"] == "20.00 USD"


def test_given_program_timezone_when_history_opened_then_times_are_local(
    support_user, card_with_decline
):
    # given
    Program.objects.filter(pk=card_with_decline.cardholder.program_id).update(timezone="Asia/Tokyo")
    # when
    response = login(support_user).get(history_url(card_with_decline))
    # then
    assert all(row["at"].endswith(" JST") for row in response.context["rows"])


def test_given_a_card_when_its_page_and_the_card_list_open_then_both_link_to_its_history(
    support_user, card_with_decline
):
    client = login(support_user)
    url = history_url(card_with_decline)
    assert url in client.get(f"/admin/cards/card/{card_with_decline.pk}/change/").content.decode()
    assert url in client.get("/admin/cards/card/").content.decode()


def test_given_a_user_without_card_permission_when_opening_history_then_403(
    django_user_model, card_with_decline
):
    nobody = django_user_model.objects.create_user(username="nobody", is_staff=True)
    assert login(nobody).get(history_url(card_with_decline)).status_code == 403


def test_given_unknown_card_when_opening_history_then_404(support_user):
    assert login(support_user).get("/admin/cards/card/999999/history/").status_code == 404


def test_given_anonymous_when_opening_history_then_sent_to_login(client, card_with_decline):
    response = client.get(history_url(card_with_decline))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_given_released_hold_when_history_opened_then_release_and_closed_hold_shown(
    client, marqeta_auth, support_user, card_in_cache
):
    # given
    assert authorize(client, marqeta_auth, card_in_cache, "rel-1", "7.00") == 200
    drain_outbox()
    release_hold(hold=Hold.objects.get(), release_key="rev-rel-1")
    # when
    rows = login(support_user).get(history_url(card_in_cache)).context["rows"]
    # then
    assert [row["kind"] for row in rows] == [
        "hold released (reversal)",
        "authorization",
        "deposit",
    ]
    assert rows[1]["hold"].startswith("closed")
    assert [row["available_after"] for row in rows] == ["100.00 USD", "93.00 USD", "100.00 USD"]


def test_given_a_non_numeric_id_when_opening_history_then_404(support_user):
    assert login(support_user).get("/admin/cards/card/abc/history/").status_code == 404


def test_given_a_card_when_its_history_opens_then_it_links_to_the_cards_audit_log(
    ops_user, card_with_decline
):
    page = login(ops_user).get(history_url(card_with_decline)).content.decode()
    assert f"/admin/ledger/auditevent/?target_type=cards.card&amp;q={card_with_decline.pk}" in page
