"""POST /jit/marqeta/: approvals, declines, replays, advices and bad input, in Marqeta's format."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cards.services import set_card_state
from jit import cache
from jit.keys import all_outbox_keys
from jit.outbox import drain_outbox
from jit.redis_client import gateway_redis
from jit.sync import rebuild_balance_cache
from tests.jit.conftest import JSON, basic, jit_body

pytestmark = pytest.mark.django_db
URL = "/jit/marqeta/"


def post(client, body: str, auth: dict):
    return client.post(URL, body, content_type=JSON, **auth)


def funding(response) -> dict:
    return json.loads(response.content, parse_float=Decimal)["jit_funding"]


def available(card) -> int:
    return cache.cached_available(user_token=card.cardholder.token)


def outbox_events() -> int:
    return sum(gateway_redis().xlen(key) for key in all_outbox_keys())


def test_given_funded_card_when_authorized_then_no_sql_and_one_redis_call(
    client, marqeta_auth, card_in_cache, django_assert_num_queries, redis_commands
):
    body = jit_body(card_in_cache, token="jit-a", amount="12.34")
    # when
    with django_assert_num_queries(0):
        response = post(client, body, marqeta_auth)
    # then
    assert response.status_code == 200
    assert redis_commands == ["EVALSHA"]
    echo = funding(response)
    assert (echo["token"], echo["method"], echo["amount"]) == (
        "jit-a",
        "pgfs.authorization",
        Decimal("12.34"),
    )
    assert "decline_reason" not in echo
    assert b'"amount": 12.34' in response.content  # a JSON number, as received
    assert available(card_in_cache) == 10_000 - 1_234


def test_given_low_balance_when_authorized_then_402_insufficient_funds_and_nothing_held(
    client, marqeta_auth, card_in_cache
):
    response = post(client, jit_body(card_in_cache, token="jit-b", amount="100.01"), marqeta_auth)
    assert response.status_code == 402
    assert funding(response)["decline_reason"] == "INSUFFICIENT_FUNDS"
    assert funding(response)["token"] == "jit-b"
    assert available(card_in_cache) == 10_000


def test_given_exact_balance_when_authorized_then_approved_to_zero(
    client, marqeta_auth, card_in_cache
):
    response = post(client, jit_body(card_in_cache, token="jit-all", amount="100"), marqeta_auth)
    assert response.status_code == 200
    assert available(card_in_cache) == 0


def test_given_approval_when_same_token_replayed_then_same_answer_and_held_once(
    client, marqeta_auth, card_in_cache
):
    body = jit_body(card_in_cache, token="jit-r", amount="40.00")
    first = post(client, body, marqeta_auth)
    # when
    again = post(client, body, marqeta_auth)
    # then
    assert (first.status_code, again.status_code) == (200, 200)
    assert funding(again) == funding(first)
    assert available(card_in_cache) == 6_000
    assert outbox_events() == 1


def test_given_decline_when_replayed_after_deposit_then_still_declined(
    client, marqeta_auth, card_in_cache
):
    body = jit_body(card_in_cache, token="jit-d", amount="150.00")
    assert post(client, body, marqeta_auth).status_code == 402
    cache.put_account(
        user_token=card_in_cache.cardholder.token, available_minor=50_000, currency_code="USD"
    )
    # when
    again = post(client, body, marqeta_auth)
    # then: the original answer, a decline included
    assert again.status_code == 402
    assert funding(again)["decline_reason"] == "INSUFFICIENT_FUNDS"


def test_given_redis_lost_and_rebuilt_when_marqeta_retries_then_the_first_answers_stand(
    client, marqeta_auth, card_in_cache
):
    # given: an approval and a decline, written to the ledger; then Redis is lost and rebuilt
    approved = jit_body(card_in_cache, token="jit-rb-ok", amount="40.00")
    declined = jit_body(card_in_cache, token="jit-rb-no", amount="150.00")
    first = [post(client, body, marqeta_auth) for body in (approved, declined)]
    drain_outbox()
    gateway_redis().flushdb()
    report = rebuild_balance_cache()
    cache.put_account(  # and the cardholder has since been topped up
        user_token=card_in_cache.cardholder.token, available_minor=50_000, currency_code="USD"
    )
    # when: Marqeta retries both tokens
    again = [post(client, body, marqeta_auth) for body in (approved, declined)]
    # then: the same answers, and the approval moved the cache once
    assert report.answers == 2
    assert [r.status_code for r in again] == [r.status_code for r in first] == [200, 402]
    assert [funding(r) for r in again] == [funding(r) for r in first]
    assert available(card_in_cache) == 50_000


def test_given_token_when_replayed_with_other_amount_then_409_and_first_answer_stands(
    client, marqeta_auth, card_in_cache
):
    post(client, jit_body(card_in_cache, token="jit-x", amount="10.00"), marqeta_auth)
    response = post(client, jit_body(card_in_cache, token="jit-x", amount="99.00"), marqeta_auth)
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert available(card_in_cache) == 9_000


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"HTTP_AUTHORIZATION": basic("marqeta_jit_test", "wrong")},
        {"HTTP_AUTHORIZATION": "Basic !!!not-base64"},
        {"HTTP_AUTHORIZATION": "Bearer abc"},
    ],
)
def test_given_missing_or_wrong_credentials_when_posting_then_401_and_nothing_recorded(
    client, card_in_cache, auth
):
    response = post(client, jit_body(card_in_cache, token="jit-auth"), auth)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert outbox_events() == 0
    assert available(card_in_cache) == 10_000


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "malformed_request"),
        ("[1, 2]", "malformed_request"),
        ('{"type": "authorization"}', "missing_jit_funding"),
        ('{"gpa_order": {"jit_funding": "x"}}', "invalid_field"),
    ],
)
def test_given_malformed_body_when_posting_then_400_with_code(client, marqeta_auth, body, code):
    response = post(client, body, marqeta_auth)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert outbox_events() == 0


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ('"12.345"', "invalid_amount"),
        ("12.345", "invalid_amount"),
        ('"abc"', "invalid_amount"),
        ("-5.00", "invalid_field"),
        ("true", "invalid_field"),
        ("null", "invalid_field"),
        ("1e400", "invalid_amount"),
        ('"NaN"', "invalid_amount"),
    ],
)
def test_given_bad_amount_when_posting_then_400_and_nothing_held(
    client, marqeta_auth, card_in_cache, amount, code
):
    response = post(client, jit_body(card_in_cache, token="jit-bad", amount=amount), marqeta_auth)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert available(card_in_cache) == 10_000


def test_given_amount_as_string_when_posting_then_accepted(client, marqeta_auth, card_in_cache):
    response = post(client, jit_body(card_in_cache, token="jit-s", amount='"1.00"'), marqeta_auth)
    assert response.status_code == 200
    assert available(card_in_cache) == 9_900


def test_given_oversized_body_when_posting_then_413(client, marqeta_auth, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_048
    response = post(client, '{"pad": "' + "x" * 4_096 + '"}', marqeta_auth)
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_given_suspended_card_when_authorized_then_402_card_not_active(
    client, marqeta_auth, card_in_cache
):
    set_card_state(card=card_in_cache, state="SUSPENDED", actor=None, reason="lost")
    from tests.jit.conftest import put_in_cache

    put_in_cache(card_in_cache)
    response = post(client, jit_body(card_in_cache, token="jit-susp"), marqeta_auth)
    assert response.status_code == 402
    assert funding(response)["decline_reason"] == "CARD_NOT_ACTIVE"


def test_given_card_not_in_cache_when_authorized_then_402_invalid_card(
    client, marqeta_auth, funded_card
):
    response = post(client, jit_body(funded_card, token="jit-nocache"), marqeta_auth)
    assert response.status_code == 402
    assert funding(response)["decline_reason"] == "INVALID_CARD"


def test_given_auth_when_incremental_then_decided_on_increment(client, marqeta_auth, card_in_cache):
    post(client, jit_body(card_in_cache, token="jit-a-auth", amount="60.00"), marqeta_auth)
    # when: +30 fits (40 left), then +30 more does not (10 left)
    first = post(
        client,
        jit_body(
            card_in_cache,
            token="jit-a-incr1",
            amount="30.00",
            method="pgfs.authorization.incremental",
            original="jit-a-auth",
        ),
        marqeta_auth,
    )
    second = post(
        client,
        jit_body(
            card_in_cache,
            token="jit-a-incr2",
            amount="30.00",
            method="pgfs.authorization.incremental",
            original="jit-a-auth",
        ),
        marqeta_auth,
    )
    # then
    assert (first.status_code, second.status_code) == (200, 402)
    assert available(card_in_cache) == 1_000


def test_given_hold_when_reversal_advice_then_200_and_released_in_cache_at_once(
    client, marqeta_auth, card_in_cache
):
    post(client, jit_body(card_in_cache, token="jit-c-auth", amount="20.00"), marqeta_auth)
    # when
    response = post(
        client,
        jit_body(
            card_in_cache,
            token="jit-c-rev",
            amount="20.00",
            method="pgfs.authorization.reversal",
            original="jit-c-auth",
        ),
        marqeta_auth,
    )
    # then
    assert response.status_code == 200
    assert available(card_in_cache) == 10_000


def test_given_reversal_when_larger_than_the_hold_then_only_the_hold_released(
    client, marqeta_auth, card_in_cache
):
    post(client, jit_body(card_in_cache, token="jit-c-auth", amount="20.00"), marqeta_auth)
    post(
        client,
        jit_body(
            card_in_cache,
            token="jit-c-rev",
            amount="500.00",
            method="pgfs.authorization.reversal",
            original="jit-c-auth",
        ),
        marqeta_auth,
    )
    assert available(card_in_cache) == 10_000


def test_given_balance_inquiry_when_posted_then_200_with_every_balance_member(
    client, marqeta_auth, card_in_cache
):
    response = post(
        client,
        jit_body(card_in_cache, token="jit-e-bal", amount="0", method="pgfs.balanceinquiry"),
        marqeta_auth,
    )
    assert response.status_code == 200
    usd = funding(response)["balances"]["USD"]
    assert usd["available_balance"] == Decimal("100.00")
    assert set(usd) == {
        "currency_code",
        "available_balance",
        "ledger_balance",
        "credit_balance",
        "pending_credits",
        "last_updated_time",
        "balances",
    }


@pytest.mark.parametrize(
    ("method", "status", "decline_reason"),
    [
        ("pgfs.some.new.method", 402, "TRANSACTION_NOT_PERMITTED"),
        ("pgfs.some.new.clearing", 200, None),
        ("pgfs.original.credit.authorization", 402, "TRANSACTION_NOT_PERMITTED"),
        ("pgfs.authorization.advice", 200, None),
    ],
)
def test_given_unusual_method_when_posted_then_answered_per_policy(
    client, marqeta_auth, card_in_cache, method, status, decline_reason
):
    response = post(client, jit_body(card_in_cache, token="jit-m", method=method), marqeta_auth)
    assert response.status_code == status
    assert funding(response).get("decline_reason") == decline_reason
    assert available(card_in_cache) == 10_000


def test_given_force_capture_advice_when_posted_then_200_and_charged_in_cache(
    client, marqeta_auth, card_in_cache
):
    response = post(
        client,
        jit_body(card_in_cache, token="jit-d-force", amount="120.00", method="pgfs.force_capture"),
        marqeta_auth,
    )
    assert response.status_code == 200  # an advice is never refused, even into the negative
    assert available(card_in_cache) == -2_000


def test_given_huge_balance_when_authorized_then_every_digit_kept(
    client, marqeta_auth, card_in_cache
):
    # given: 9,999,999,999,999.99 USD, past the 14 digits Lua prints by default
    user = card_in_cache.cardholder.token
    cache.put_account(user_token=user, available_minor=999_999_999_999_999, currency_code="USD")
    body = jit_body(card_in_cache, token="jit-huge", amount="9999999999999.98")
    # when
    first = post(client, body, marqeta_auth)
    replay = post(client, body, marqeta_auth)
    # then
    assert (first.status_code, replay.status_code) == (200, 200)
    assert available(card_in_cache) == 1
    [(_, [(_, fields)])] = [
        (key, gateway_redis().xrange(key)) for key in all_outbox_keys() if gateway_redis().xlen(key)
    ]
    assert (fields["amount"], fields["available"]) == ("999999999999998", "1")
