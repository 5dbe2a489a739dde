"""Who may call what: Ops move money and change cards; Support only reads; others nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ledger.models import LedgerTransaction

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def nobody(db):
    return get_user_model().objects.create_user(username="nobody", password="nobody-pass-123")


def test_given_support_token_when_depositing_then_403_and_no_money_moves(support_user, funded_card):
    holder = funded_card.cardholder.token
    response = client_for(support_user).post(
        f"/api/v1/cardholders/{holder}/deposits/",
        {"amount": "1.00", "currency_code": "USD"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert LedgerTransaction.objects.count() == 1  # the fixture's own deposit


def test_given_support_token_when_reading_balance_and_history_then_200(support_user, funded_card):
    client = client_for(support_user)
    assert (
        client.get(f"/api/v1/cardholders/{funded_card.cardholder.token}/balance/").status_code
        == 200
    )
    assert client.get(f"/api/v1/cards/{funded_card.token}/transactions/").status_code == 200
    assert client.get(f"/api/v1/cards/{funded_card.token}/controls/").status_code == 200


def test_given_support_token_when_changing_controls_then_403(support_user, funded_card):
    response = client_for(support_user).put(
        f"/api/v1/cards/{funded_card.token}/controls/", {"control": {}, "limits": []}, format="json"
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/cardholders/"),
        ("post", "/api/v1/cards/"),
        ("get", "/api/v1/cardholders/{holder}/balance/"),
        ("get", "/api/v1/cards/{card}/transactions/"),
    ],
)
def test_given_user_without_group_when_calling_api_then_403(nobody, funded_card, method, path):
    url = path.format(holder=funded_card.cardholder.token, card=funded_card.token)
    response = getattr(client_for(nobody), method)(url, {}, format="json")
    assert response.status_code == 403
