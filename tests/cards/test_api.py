"""Internal REST API: cardholders, cards, deposits with Idempotency-Key, balances, bad input."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cards.models import Card, Cardholder
from ledger.models import Kind, LedgerTransaction
from tests.cards.factories import ProgramFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def program():
    return ProgramFactory(name="demo", currency_code="USD")


@pytest.fixture
def cardholder_token(api_client, program) -> str:
    response = api_client.post(
        "/api/v1/cardholders/",
        {
            "token": "user_7f3a",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["token"]


def deposit(client: APIClient, token: str, amount: object, key: str | None = "k1", **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    body = {"amount": amount, "currency_code": "USD", **extra}
    return client.post(f"/api/v1/cardholders/{token}/deposits/", body, format="json", **headers)


def test_given_program_when_cardholder_created_then_201_with_token_and_usd(cardholder_token):
    assert cardholder_token == "user_7f3a"
    assert Cardholder.objects.get(token="user_7f3a").funding_accounts.get().currency_code == "USD"


def test_given_no_token_when_cardholder_created_then_token_generated(api_client, program):
    response = api_client.post("/api/v1/cardholders/", {"first_name": "Bo"}, format="json")
    assert response.status_code == 201
    assert response.json()["token"].startswith("user_")


def test_given_taken_token_when_cardholder_created_then_409(api_client, cardholder_token):
    response = api_client.post("/api/v1/cardholders/", {"token": "user_7f3a"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "token_taken"
    assert Cardholder.objects.count() == 1


def test_given_cardholder_when_card_created_then_active_and_usable(api_client, cardholder_token):
    response = api_client.post(
        "/api/v1/cards/",
        {"cardholder_token": cardholder_token, "token": "card_91b2"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["state"] == "ACTIVE"
    assert Card.objects.get(token="card_91b2").state == Card.State.ACTIVE


def test_given_unknown_cardholder_when_card_created_then_404(api_client, program):
    response = api_client.post("/api/v1/cards/", {"cardholder_token": "nobody"}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "cardholder_not_found"


def test_given_cardholder_when_deposit_then_201_and_balance_shows_it(
    api_client, program, django_capture_on_commit_callbacks
):
    # given: the commit hooks run, as in production, so the balance cache follows the ledger
    with django_capture_on_commit_callbacks(execute=True):
        token = api_client.post("/api/v1/cardholders/", {}, format="json").json()["token"]
        # when
        response = deposit(api_client, token, "12.34")
    # then
    assert response.status_code == 201
    assert response.json()["amount"] == "12.34"
    balance = api_client.get(f"/api/v1/cardholders/{token}/balance/").json()
    assert balance == {
        "cardholder_token": token,
        "currency_code": "USD",
        "available": "12.34",
        "pending": "0.00",
        "ledger": "12.34",
        "source": "cache",
    }


def test_given_deposit_when_same_key_again_then_same_response_and_no_new_money(
    api_client, cardholder_token
):
    first = deposit(api_client, cardholder_token, "12.34")
    # when
    again = deposit(api_client, cardholder_token, "12.34")
    # then
    assert again.status_code == 201
    assert again.json() == first.json()
    assert LedgerTransaction.objects.filter(kind=Kind.DEPOSIT).count() == 1


def test_given_deposit_when_same_key_other_body_then_409_and_nothing_moves(
    api_client, cardholder_token
):
    deposit(api_client, cardholder_token, "12.34")
    response = deposit(api_client, cardholder_token, "99.00")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    balance = api_client.get(f"/api/v1/cardholders/{cardholder_token}/balance/").json()
    assert (balance["available"], balance["source"]) == ("12.34", "ledger")


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("1.005", "invalid_amount"),  # more decimals than USD allows
        ("0", "invalid_amount"),
        ("-5.00", "invalid_amount"),
        ("abc", "invalid_request"),
        ("NaN", "invalid_amount"),
        ("1e30", "invalid_amount"),
        (True, "invalid_request"),
        ({"nested": 1}, "invalid_request"),
    ],
)
def test_given_bad_amount_when_deposit_then_4xx_with_code_and_nothing_posted(
    api_client, cardholder_token, amount, code
):
    response = deposit(api_client, cardholder_token, amount)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert not LedgerTransaction.objects.exists()


def test_given_unknown_currency_when_deposit_then_400(api_client, cardholder_token):
    response = deposit(api_client, cardholder_token, "1.00", currency_code="XYZ")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_currency"


def test_given_other_currency_when_deposit_then_400_currency_mismatch(api_client, cardholder_token):
    response = deposit(api_client, cardholder_token, "1.00", currency_code="EUR")
    assert response.status_code == 400
    assert response.json()["code"] == "currency_mismatch"


def test_given_no_idempotency_key_when_deposit_then_400(api_client, cardholder_token):
    response = deposit(api_client, cardholder_token, "1.00", key=None)
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_missing"


def test_given_unknown_cardholder_when_deposit_then_404(api_client, program):
    response = deposit(api_client, "nobody", "1.00")
    assert response.status_code == 404
    assert response.json()["code"] == "cardholder_not_found"


def test_given_malformed_json_when_posted_then_400_malformed_request(api_client, program):
    response = api_client.post(
        "/api/v1/cardholders/", data=b'{"token": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"
    assert not Cardholder.objects.exists()


def test_given_oversized_body_when_posted_then_413_and_nothing_written(
    api_client, program, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = b'{"first_name": "' + b"x" * 4096 + b'"}'
    response = api_client.post("/api/v1/cardholders/", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert not Cardholder.objects.exists()


def test_given_deeply_nested_json_when_posted_then_400(api_client, program):
    body = b"[" * 100_000 + b"]" * 100_000
    response = api_client.post("/api/v1/cardholders/", data=body, content_type="application/json")
    assert response.status_code in (400, 413)
    assert not Cardholder.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/cardholders/"),
        ("post", "/api/v1/cards/"),
        ("post", "/api/v1/cardholders/user_7f3a/deposits/"),
        ("get", "/api/v1/cardholders/user_7f3a/balance/"),
    ],
)
def test_given_no_or_wrong_token_when_calling_api_then_401(program, method, path):
    for client in (APIClient(), APIClient(HTTP_AUTHORIZATION="Token not-a-real-token")):
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code == 401
        assert response.json()["code"] in ("not_authenticated", "authentication_failed")


def test_given_schema_when_requested_then_openapi_lists_the_endpoints(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/cardholders/{cardholder_token}/deposits/" in response.content.decode()
