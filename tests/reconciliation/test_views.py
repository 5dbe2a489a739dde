"""`POST /webhooks/marqeta/`: Basic auth, optional HMAC, store raw, answer 200 at once."""

from __future__ import annotations

import pytest

from reconciliation.models import WebhookEvent
from tests.jit.conftest import basic
from tests.reconciliation.conftest import FIXTURES, JSON, dumps, envelope, signed, transaction

pytestmark = pytest.mark.django_db
URL = "/webhooks/marqeta/"
SECRET = "whsec-test-0123456789abcdef"


def fixture_body(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def post(client, body: bytes, auth: dict, **headers: str):
    return client.post(URL, body, content_type=JSON, **auth, **headers)


def test_given_ping_when_posted_then_200_and_stored_as_ignored(client, webhook_auth, enqueued):
    # when
    response = post(client, fixture_body("webhook_ping"), webhook_auth)
    # then
    assert response.status_code == 200
    assert response.json() == {"received": 1, "duplicates": 0}
    event = WebhookEvent.objects.get()
    assert (event.token, event.category, event.status) == ("pings:marqeta", "pings", "ignored")
    assert enqueued == []


def test_given_new_transaction_when_posted_then_stored_raw_and_queued_on_commit(
    client, webhook_auth, enqueued, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, fixture_body("webhook_clearing_1"), webhook_auth)
    # then
    assert response.status_code == 200
    assert response.json() == {"received": 1, "duplicates": 0}
    event = WebhookEvent.objects.get()
    assert (event.token, event.event_type, event.state) == (
        "txn-a-clr1",
        "authorization.clearing",
        "COMPLETION",
    )
    assert (event.status, event.card_token, event.preceding_token) == (
        "received",
        "card_91b2",
        "txn-a-auth",
    )
    assert event.raw["amount"] == "120.00"  # the decimal as sent, never a float
    assert event.raw["fees"][0]["amount"] == "1.73"
    assert enqueued == [event.pk]


def test_given_event_already_received_when_posted_again_then_one_row_and_200(
    client, webhook_auth, enqueued, django_capture_on_commit_callbacks
):
    # given
    body = fixture_body("webhook_reversal")
    with django_capture_on_commit_callbacks(execute=True):
        post(client, body, webhook_auth)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, webhook_auth)
    # then
    assert response.status_code == 200
    assert response.json() == {"received": 1, "duplicates": 1}
    assert WebhookEvent.objects.count() == 1
    assert len(enqueued) == 1


def test_given_batch_with_a_repeat_when_posted_then_each_token_stored_once(
    client, webhook_auth, enqueued, django_capture_on_commit_callbacks
):
    # given
    first = transaction("webhook_clearing_1")
    second = transaction("webhook_clearing_2")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, envelope(first, second, first), webhook_auth)
    # then
    assert response.json() == {"received": 3, "duplicates": 1}
    assert sorted(WebhookEvent.objects.values_list("token", flat=True)) == [
        "txn-a-clr1",
        "txn-a-clr2",
    ]
    assert len(enqueued) == 2


def test_given_other_categories_when_posted_then_stored_as_ignored_with_prefixed_token(
    client, webhook_auth, enqueued
):
    # when
    card = post(client, fixture_body("webhook_card_transition"), webhook_auth)
    companion = post(client, fixture_body("webhook_gpa_credit"), webhook_auth)
    # then
    assert (card.status_code, companion.status_code) == (200, 200)
    statuses = dict(WebhookEvent.objects.values_list("token", "status"))
    assert statuses == {"cards:ct-91b2-active": "ignored", "txn-c-rev-gpa": "ignored"}
    assert enqueued == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic("marqeta_webhook_test", "wrong-password-000000000"),
        basic("someone", "Webhook-Test-Password-2026!"),
        "Bearer abc",
    ],
)
def test_given_missing_or_wrong_basic_when_posted_then_401_and_nothing_stored(
    client, authorization, enqueued
):
    # given
    auth = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    # when
    response = post(client, fixture_body("webhook_clearing_1"), auth)
    # then
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert not WebhookEvent.objects.exists()
    assert enqueued == []


def test_given_jit_credentials_when_posting_webhook_then_401(client, jit_auth):
    response = post(client, fixture_body("webhook_clearing_1"), jit_auth)
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()


def test_given_secret_and_good_signature_when_posted_then_200(client, webhook_auth, settings):
    # given
    settings.MARQETA_WEBHOOK_SECRET = SECRET
    body = fixture_body("webhook_clearing_1")
    # when
    response = post(client, body, webhook_auth, HTTP_X_MARQETA_SIGNATURE=signed(body, SECRET))
    # then
    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize(
    "signature",
    [None, "", "00" * 32, "not-hex", "sig-of-another-body", "ünïcode"],
)
def test_given_secret_and_bad_or_missing_signature_when_posted_then_403_and_nothing_stored(
    client, webhook_auth, settings, signature, enqueued
):
    # given
    settings.MARQETA_WEBHOOK_SECRET = SECRET
    body = fixture_body("webhook_clearing_1")
    if signature == "sig-of-another-body":
        signature = signed(body + b" ", SECRET)
    headers = {} if signature is None else {"HTTP_X_MARQETA_SIGNATURE": signature}
    # when
    response = post(client, body, webhook_auth, **headers)
    # then
    assert response.status_code == 403
    assert response.json()["code"] == "bad_signature"
    assert not WebhookEvent.objects.exists()
    assert enqueued == []


def test_given_signature_of_other_secret_when_posted_then_403(client, webhook_auth, settings):
    settings.MARQETA_WEBHOOK_SECRET = SECRET
    body = fixture_body("webhook_clearing_1")
    response = post(client, body, webhook_auth, HTTP_X_MARQETA_SIGNATURE=signed(body, SECRET + "x"))
    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"[]",
        b'"transactions"',
        b'{"transactions": {"token": "x"}}',
        b'{"transactions": ["txn-1"]}',
        b'{"Transactions!": []}',
        b'{"transactions": [{"token": "t", "amount": NaN}]}',
        b"\xff\xfe",
    ],
)
def test_given_malformed_body_when_posted_then_400_with_code_and_nothing_stored(
    client, webhook_auth, body, enqueued
):
    # when
    response = post(client, body, webhook_auth)
    # then
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_webhook"
    assert not WebhookEvent.objects.exists()
    assert enqueued == []


def test_given_body_over_the_limit_when_posted_then_413_and_nothing_stored(
    client, webhook_auth, settings
):
    # given
    settings.MARQETA_WEBHOOK_MAX_BYTES = 1024
    body = envelope(transaction("webhook_clearing_1", memo="x" * 2000))
    # when
    response = post(client, body, webhook_auth)
    # then
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert not WebhookEvent.objects.exists()


def test_given_batch_of_ten_large_transactions_when_posted_then_all_stored(
    client, webhook_auth, enqueued, django_capture_on_commit_callbacks
):
    # given: up to 10 notifications per POST (MARQETA.md §7.2), over the internal API's 64 KiB
    events = [
        transaction("webhook_clearing_1", token=f"txn-{n}", memo="m" * 7000) for n in range(10)
    ]
    body = envelope(*events)
    assert len(body) > 64 * 1024
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, webhook_auth)
    # then
    assert response.json() == {"received": 10, "duplicates": 0}
    assert len(enqueued) == 10


def test_given_event_without_token_when_posted_twice_then_keyed_by_content_once(
    client, webhook_auth, enqueued
):
    # given
    event = transaction("webhook_clearing_1")
    del event["token"]
    body = envelope(event)
    # when
    post(client, body, webhook_auth)
    response = post(client, body, webhook_auth)
    # then
    assert response.json() == {"received": 1, "duplicates": 1}
    (stored,) = WebhookEvent.objects.all()
    assert stored.token.startswith("transactions:sha256-")


def test_given_number_tokens_when_posted_then_stored_as_text(client, webhook_auth):
    body = dumps({"transactions": [{"token": 123456, "type": "unknown", "state": "PENDING"}]})
    assert post(client, body, webhook_auth).status_code == 200
    assert WebhookEvent.objects.get().token == "123456"
