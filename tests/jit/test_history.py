"""A card's history for support: decisions and money in one timeline, in plain words."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cards import services
from jit.history import card_history
from jit.outbox import drain_outbox
from ledger.models import Hold
from ledger.services import clear_hold, release_hold
from tests.jit.conftest import JSON, jit_body

pytestmark = pytest.mark.django_db


def authorize(client, auth, card, token: str, amount: str) -> int:
    body = jit_body(card, token=token, amount=amount)
    return client.post("/jit/marqeta/", body, content_type=JSON, **auth).status_code


@pytest.fixture
def daily_limit_30(card_in_cache, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.set_velocity_limit(
            scope_obj=card_in_cache, window="day", max_amount_minor=3_000, actor=None,
            reason="test",
        )  # fmt: skip


def test_given_a_day_of_activity_when_history_read_then_one_timeline_with_running_balance(
    client, marqeta_auth, card_in_cache, daily_limit_30
):
    # given: a 20.00 authorization, a declined 15.00 (over the daily limit), a clearing
    assert authorize(client, marqeta_auth, card_in_cache, "h-1", "20.00") == 200
    assert authorize(client, marqeta_auth, card_in_cache, "h-2", "15.00") == 402
    drain_outbox()
    clear_hold(hold=Hold.objects.get(), amount_minor=1_800, clearing_key="clr-h-1")
    # when
    history = card_history(card=card_in_cache)
    # then: newest first
    kinds = [entry.kind for entry in history]
    assert kinds == ["clearing", "declined authorization", "authorization", "deposit"]
    clearing, decline, authorization, deposit = history
    assert decline.decision["explanation"] == (
        "declined: daily spend limit, 10.00 USD of 30.00 USD remaining"
    )
    assert decline.decision["decline_reason"] == "AMOUNT_LIMIT_EXCEEDED"
    assert authorization.decision["explanation"] == "approved: approved"
    assert authorization.hold["status"] == "closed"
    assert clearing.details["released_minor"] == 200
    assert [e.available_after_minor for e in (clearing, authorization, deposit)] == [
        8_200, 8_000, 10_000,
    ]  # fmt: skip


def test_given_open_hold_when_history_read_then_it_says_when_the_hold_drops_off(
    client, marqeta_auth, card_in_cache
):
    authorize(client, marqeta_auth, card_in_cache, "h-open", "5.00")
    drain_outbox()
    [authorization, _] = card_history(card=card_in_cache)
    assert authorization.hold["status"] == "open"
    assert authorization.hold["expires_at"] == Hold.objects.get().expires_at


def test_given_hundreds_of_rows_when_history_read_then_a_fixed_number_of_queries(
    client, marqeta_auth, card_in_cache
):
    for n in range(150):
        authorize(client, marqeta_auth, card_in_cache, f"q-{n}", "0.10")
    drain_outbox()
    for hold in Hold.objects.all()[:50]:
        release_hold(hold=hold, release_key=f"rev-{hold.pk}")
    # when
    with CaptureQueriesContext(connection) as queries:
        history = card_history(card=card_in_cache)
    # then
    assert len(history) == 201  # 150 holds, 50 releases, the deposit
    print(f"card history of {len(history)} rows: {len(queries)} queries")
    assert len(queries) <= 8


def test_given_card_when_transactions_api_called_then_same_content_as_money_strings(
    client, marqeta_auth, api_client, card_in_cache, daily_limit_30
):
    authorize(client, marqeta_auth, card_in_cache, "api-1", "12.34")
    drain_outbox()
    response = api_client.get(f"/api/v1/cards/{card_in_cache.token}/transactions/")
    assert response.status_code == 200
    body = response.json()
    assert body["available"] == "87.66"
    assert body["entries"][0]["amount"] == "12.34"
    assert body["entries"][0]["decision"]["jit_funding_token"] == "api-1"
    [day] = body["limits"]
    assert (day["window"], day["used_amount"], day["remaining_amount"]) == ("day", 1_234, 1_766)


def test_given_unknown_card_when_transactions_api_called_then_404(api_client):
    response = api_client.get("/api/v1/cards/nope/transactions/")
    assert response.status_code == 404
    assert response.json()["code"] == "card_not_found"
