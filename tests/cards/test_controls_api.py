"""GET|PUT /api/v1/cards/{token}/controls/: the card's own controls, in decimal strings."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cards.models import SpendControl, VelocityLimit
from cards.services import set_mcc_group
from ledger.models import AuditEvent
from tests.cards.factories import SpendControlFactory, VelocityLimitFactory

pytestmark = pytest.mark.django_db


def url(card) -> str:
    return f"/api/v1/cards/{card.token}/controls/"


def put(client: APIClient, card, body: dict):
    return client.put(url(card), body, format="json")


FULL_BODY = {
    "control": {
        "max_transaction": "250.00",
        "mcc_allow": [],
        "mcc_block": ["7995", "6051"],
        "mcc_groups_block": ["lodging"],
        "blocked_countries": ["PRK"],
        "allowed_channels": ["CARD_PRESENT", "ECOMMERCE"],
    },
    "limits": [
        {"window": "day", "max_amount": "500.00", "max_count": 10},
        {"window": "month", "max_count": 100, "active": False},
    ],
    "reason": "cardholder asked for tighter limits",
}


@pytest.fixture
def lodging(card):
    return set_mcc_group(program=card.cardholder.program, name="lodging", mccs=["7011", "3501"])


def test_given_card_without_controls_when_get_then_empty_control_and_effective(api_client, card):
    # when
    response = api_client.get(url(card))
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["card_token"] == card.token
    assert body["currency_code"] == "USD"
    assert body["control"]["max_transaction"] is None
    assert body["control"]["mcc_block"] == []
    assert body["limits"] == []
    assert body["effective"]["v"] == 1
    assert body["effective"]["mcc_allow"] is None


def test_given_program_and_card_controls_when_get_then_own_control_and_strictest_effective(
    api_client, card
):
    # given
    SpendControlFactory(program=card.cardholder.program, card=None, max_transaction_minor=9_000)
    SpendControlFactory(card=card, max_transaction_minor=20_000)
    VelocityLimitFactory(card=card, window="week", max_amount_minor=12_345, max_count=4)
    # when
    body = api_client.get(url(card)).json()
    # then
    assert body["control"]["max_transaction"] == "200.00"
    assert body["limits"] == [
        {"window": "week", "max_amount": "123.45", "max_count": 4, "active": True}
    ]
    assert body["effective"]["max_txn"] == 9_000


def test_given_body_when_put_then_card_control_and_limits_replaced_and_audited(
    api_client, api_user, card, lodging
):
    # given
    VelocityLimitFactory(card=card, window="week")
    # when
    response = put(api_client, card, FULL_BODY)
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["control"] == {
        "max_transaction": "250.00", "mcc_allow": [], "mcc_block": ["6051", "7995"],
        "mcc_groups_allow": [], "mcc_groups_block": ["lodging"], "blocked_countries": ["PRK"],
        "allowed_channels": ["CARD_PRESENT", "ECOMMERCE"],
        "updated_at": body["control"]["updated_at"],
    }  # fmt: skip
    assert body["limits"] == [
        {"window": "day", "max_amount": "500.00", "max_count": 10, "active": True},
        {"window": "month", "max_amount": None, "max_count": 100, "active": False},
    ]
    assert body["effective"]["max_txn"] == 25_000
    assert body["effective"]["mcc_block"] == ["3501", "6051", "7011", "7995"]
    assert [limit["window"] for limit in body["effective"]["limits"]] == ["day"]  # active only
    control = SpendControl.objects.get(card=card)
    assert control.max_transaction_minor == 25_000
    assert sorted(VelocityLimit.objects.values_list("window", flat=True)) == ["day", "month"]
    events = AuditEvent.objects.filter(actor=api_user)
    assert {event.reason for event in events} == {"cardholder asked for tighter limits"}
    assert {event.action for event in events} == {
        "set_spend_control", "set_velocity_limit", "remove_velocity_limit"
    }  # fmt: skip


def test_given_put_twice_when_same_body_then_same_answer_and_no_new_audit(
    api_client, card, lodging
):
    first = put(api_client, card, FULL_BODY).json()
    events = AuditEvent.objects.count()
    second = put(api_client, card, FULL_BODY).json()
    assert second == first
    assert AuditEvent.objects.count() == events


def test_given_empty_lists_when_put_then_card_restrictions_cleared(api_client, card):
    # given
    SpendControlFactory(card=card, mcc_block=["7995"], max_transaction_minor=100)
    VelocityLimitFactory(card=card)
    # when
    response = put(api_client, card, {"control": {}, "limits": []})
    # then
    assert response.status_code == 200
    control = SpendControl.objects.get(card=card)
    assert (control.mcc_block, control.max_transaction_minor) == ([], None)
    assert not VelocityLimit.objects.exists()
    assert AuditEvent.objects.filter(reason="changed through the API by api").exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"control": {"max_transaction": "1.005"}, "limits": []}, "invalid_amount"),
        ({"control": {"max_transaction": "-5.00"}, "limits": []}, "invalid_amount"),
        ({"control": {"max_transaction": "0"}, "limits": []}, "invalid_amount"),
        ({"control": {"max_transaction": 12.505}, "limits": []}, "invalid_amount"),
        ({"control": {"max_transaction": "lots"}, "limits": []}, "invalid_request"),
        ({"control": {"mcc_block": ["79"]}, "limits": []}, "invalid_mcc"),
        ({"control": {"blocked_countries": ["KP"]}, "limits": []}, "invalid_country"),
        ({"control": {"allowed_channels": ["MOTO"]}, "limits": []}, "invalid_channel"),
        ({"control": {"mcc_groups_allow": ["nope"]}, "limits": []}, "invalid_mcc_group"),
        ({"control": {"mcc_block": "7995"}, "limits": []}, "invalid_request"),
        ({"control": {}, "limits": [{"window": "year", "max_count": 1}]}, "invalid_window"),
        ({"control": {}, "limits": [{"window": "day"}]}, "invalid_limit"),
        ({"control": {}, "limits": [{"window": "day", "max_count": 0}]}, "invalid_limit"),
        ({"control": {}, "limits": [{"window": "day", "max_count": "x"}]}, "invalid_request"),
        ({"control": {}, "limits": [{"window": "day", "max_amount": "0.001"}]}, "invalid_amount"),
        (
            {"control": {}, "limits": [{"window": "day", "max_count": 1}] * 2},
            "invalid_limit",
        ),
        ({"control": {}}, "invalid_request"),
        ({"limits": []}, "invalid_request"),
        ([], "invalid_request"),
    ],
)
def test_given_bad_body_when_put_then_400_with_code_and_nothing_changed(
    api_client, card, body, code
):
    # given
    SpendControlFactory(card=card, mcc_block=["6051"])
    VelocityLimitFactory(card=card, window="week", max_count=9)
    # when
    response = put(api_client, card, body)
    # then
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert SpendControl.objects.get().mcc_block == ["6051"]
    assert list(VelocityLimit.objects.values_list("window", "max_count")) == [("week", 9)]
    assert not AuditEvent.objects.exists()


def test_given_malformed_json_when_put_then_400_malformed(api_client, card):
    response = api_client.put(url(card), b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_given_unknown_card_when_get_or_put_then_404(api_client, db):
    assert api_client.get("/api/v1/cards/nope/controls/").json()["code"] == "card_not_found"
    response = api_client.put("/api/v1/cards/nope/controls/", FULL_BODY, format="json")
    assert response.status_code == 404


def test_given_no_token_when_get_or_put_then_401_and_nothing_changed(card):
    client = APIClient()
    assert client.get(url(card)).status_code == 401
    response = put(client, card, {"control": {"mcc_block": ["7995"]}, "limits": []})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert not SpendControl.objects.exists()


def test_given_yen_program_when_put_then_amounts_in_whole_yen(api_client, db):
    # given
    from tests.cards.factories import CardFactory

    card = CardFactory(cardholder__program__currency_code="JPY")
    # when
    ok = put(api_client, card, {"control": {"max_transaction": "5000"}, "limits": []})
    too_precise = put(api_client, card, {"control": {"max_transaction": "5000.5"}, "limits": []})
    # then
    assert ok.json()["control"]["max_transaction"] == "5000"
    assert SpendControl.objects.get().max_transaction_minor == 5000
    assert too_precise.json()["code"] == "invalid_amount"
