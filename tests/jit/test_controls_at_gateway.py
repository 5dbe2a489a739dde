"""Spend controls and fraud rules, edited through services, enforced by the Lua decision."""

from __future__ import annotations

import json

import pytest

from cards import services
from jit.models import JitDecision
from jit.outbox import drain_outbox
from jit.selectors import remaining_limits_now
from tests.cards.factories import CardFactory
from tests.jit.conftest import JSON, jit_body, put_in_cache

pytestmark = pytest.mark.django_db


@pytest.fixture
def configure(django_capture_on_commit_callbacks):
    """Run a config service and its commit hooks (the push to Redis), as in production."""

    def run(service, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return service(actor=None, reason="test", **kwargs)

    return run


def authorize(client, auth, card, token: str, amount: str = "10.00", **top_level):
    body = jit_body(card, token=token, amount=amount, **top_level)
    response = client.post("/jit/marqeta/", body, content_type=JSON, **auth)
    return response.status_code, json.loads(response.content)["jit_funding"].get("decline_reason")


def reason_code(token: str) -> str:
    drain_outbox()
    return JitDecision.objects.get(jit_funding_token=token).reason_code


def test_given_card_max_per_transaction_when_over_then_amount_limit_exceeded(
    client, marqeta_auth, card_in_cache, configure
):
    configure(services.set_spend_control, scope_obj=card_in_cache, max_transaction_minor=5_000)
    assert authorize(client, marqeta_auth, card_in_cache, "t1", "50.00") == (200, None)
    assert authorize(client, marqeta_auth, card_in_cache, "t2", "50.01") == (
        402,
        "AMOUNT_LIMIT_EXCEEDED",
    )
    assert reason_code("t2") == "MAX_TRANSACTION_AMOUNT"


def test_given_cardholder_daily_amount_when_exceeded_across_cards_then_declined(
    client, marqeta_auth, card_in_cache, configure
):
    second_card = CardFactory(cardholder=card_in_cache.cardholder)
    put_in_cache(second_card)
    limit = configure(
        services.set_velocity_limit,
        scope_obj=card_in_cache.cardholder,
        window="day",
        max_amount_minor=3_000,
    )
    # when: 20.00 on one card, then 15.00 on the other
    first = authorize(client, marqeta_auth, card_in_cache, "d1", "20.00")
    second = authorize(client, marqeta_auth, second_card, "d2", "15.00")
    # then
    assert first == (200, None)
    assert second == (402, "AMOUNT_LIMIT_EXCEEDED")
    assert reason_code("d2") == "VELOCITY_DAY_AMOUNT"
    declined = JitDecision.objects.get(jit_funding_token="d2")
    assert declined.limits_left == f"cardholder:{limit.pk}:day=1000/3000/-/-"  # 10.00 of 30.00
    day = next(row for row in remaining_limits_now(card=second_card) if row["window"] == "day")
    assert (day["used_amount"], day["remaining_amount"]) == (2_000, 1_000)


def test_given_count_limit_when_third_auth_then_count_limit_exceeded(
    client, marqeta_auth, card_in_cache, configure
):
    configure(services.set_velocity_limit, scope_obj=card_in_cache, window="week", max_count=2)
    outcomes = [authorize(client, marqeta_auth, card_in_cache, f"c{n}", "1.00") for n in range(3)]
    assert outcomes[-1] == (402, "TRANSACTION_COUNT_LIMIT_EXCEEDED")
    assert reason_code("c2") == "VELOCITY_WEEK_COUNT"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"mcc_block": ["7512"]}, "MCC_BLOCKED"),
        ({"mcc_allow": ["5812"]}, "MCC_NOT_ALLOWED"),
        ({"blocked_countries": ["USA"]}, "COUNTRY_BLOCKED"),
        ({"allowed_channels": ["ECOMMERCE"]}, "CHANNEL_NOT_ALLOWED"),
    ],
)
def test_given_program_control_when_request_breaks_it_then_not_permitted(
    client, marqeta_auth, card_in_cache, configure, fields, code
):
    program = card_in_cache.cardholder.program
    configure(services.set_spend_control, scope_obj=program, **fields)
    # the fixture request: MCC 7512, country USA, card present
    assert authorize(client, marqeta_auth, card_in_cache, "m1") == (
        402,
        "TRANSACTION_NOT_PERMITTED",
    )
    assert reason_code("m1") == code


def test_given_cvv_rule_on_when_cvv_mismatch_then_suspected_fraud(
    client, marqeta_auth, card_in_cache, configure
):
    program = card_in_cache.cardholder.program
    configure(services.set_fraud_rule, program=program, name="cvv", kind="cvv_mismatch", mode="on")
    bad_cvv = {"type": "CVV2", "response": {"code": "0001", "memo": "Card security code mismatch"}}
    assert authorize(
        client, marqeta_auth, card_in_cache, "f1", card_security_code_verification=bad_cvv
    ) == (402, "SUSPECTED_FRAUD")
    assert authorize(client, marqeta_auth, card_in_cache, "f2") == (200, None)
    assert reason_code("f1") == "FRAUD_CVV_MISMATCH"


def test_given_shadow_rule_when_it_hits_then_approved_and_hit_recorded(
    client, marqeta_auth, card_in_cache, configure
):
    program = card_in_cache.cardholder.program
    rule = configure(
        services.set_fraud_rule,
        program=program,
        name="big",
        kind="amount_over",
        mode="shadow",
        params={"amount_minor": 500},
    )
    assert authorize(client, marqeta_auth, card_in_cache, "s1", "10.00") == (200, None)
    drain_outbox()
    assert JitDecision.objects.get(jit_funding_token="s1").rule_hits == f"{rule.pk}:shadow:decline"


def test_given_burst_rule_when_fourth_auth_in_a_minute_then_declined(
    client, marqeta_auth, card_in_cache, configure
):
    program = card_in_cache.cardholder.program
    configure(
        services.set_fraud_rule,
        program=program,
        name="burst",
        kind="burst",
        mode="on",
        params={"count": 3, "seconds": 60},
    )
    outcomes = [authorize(client, marqeta_auth, card_in_cache, f"b{n}", "1.00") for n in range(4)]
    assert [status for status, _ in outcomes] == [200, 200, 200, 402]
    assert reason_code("b3") == "FRAUD_BURST"


def test_given_suspended_through_service_when_authorized_then_declined_at_once(
    client, marqeta_auth, card_in_cache, configure
):
    configure(services.set_card_state, card=card_in_cache, state="SUSPENDED")
    assert authorize(client, marqeta_auth, card_in_cache, "x1") == (402, "CARD_NOT_ACTIVE")
