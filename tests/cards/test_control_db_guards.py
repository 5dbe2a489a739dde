"""PostgreSQL refuses bad control rows on its own, even when the services are bypassed."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from cards.models import CommandoModeRecord, FallbackPolicy, FraudRule, SpendControl, VelocityLimit

pytestmark = pytest.mark.django_db


@pytest.fixture
def program_of_card(card):
    return card.cardholder.program


def refused(model, **fields) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.create(**fields)
    assert not model.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"mcc_allow": ["541"]},
        {"mcc_block": ["5411", "ABCD"]},
        {"blocked_countries": ["prk"]},
        {"blocked_countries": ["KP"]},
        {"allowed_channels": ["MOTO"]},
        {"max_transaction_minor": 0},
    ],
)
def test_given_raw_row_when_control_values_bad_then_database_refuses(card, fields):
    refused(SpendControl, card=card, **fields)


def test_given_raw_row_when_no_scope_or_two_scopes_then_database_refuses(card):
    refused(SpendControl)
    refused(SpendControl, card=card, cardholder=card.cardholder)
    refused(VelocityLimit, window="day", max_count=1)


def test_given_scope_with_control_when_second_control_inserted_then_database_refuses(card):
    SpendControl.objects.create(card=card, mcc_block=["7995"])
    with pytest.raises(IntegrityError), transaction.atomic():
        SpendControl.objects.create(card=card)
    assert SpendControl.objects.count() == 1


def test_given_good_raw_control_when_inserted_then_accepted(card):
    SpendControl.objects.create(
        card=card,
        mcc_allow=["5411", "5812"],
        blocked_countries=["PRK"],
        allowed_channels=["ATM", "ECOMMERCE"],
        max_transaction_minor=1,
    )
    assert SpendControl.objects.count() == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"window": "day"},
        {"window": "year", "max_count": 1},
        {"window": "day", "max_amount_minor": 0},
        {"window": "day", "max_count": 0},
    ],
)
def test_given_raw_limit_when_values_bad_then_database_refuses(card, fields):
    refused(VelocityLimit, card=card, **fields)


def test_given_window_with_limit_when_second_for_same_window_then_database_refuses(card):
    VelocityLimit.objects.create(card=card, window="day", max_count=1)
    VelocityLimit.objects.create(card=card, window="week", max_count=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        VelocityLimit.objects.create(card=card, window="day", max_count=2)
    assert VelocityLimit.objects.count() == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "velocity"},
        {"kind": "burst", "params": {"count": 5}},
        {"kind": "high_risk_mcc", "params": {}},
        {"kind": "cvv_mismatch", "mode": "loud"},
        {"kind": "cvv_mismatch", "action": "block"},
    ],
)
def test_given_raw_fraud_rule_when_bad_then_database_refuses(program_of_card, fields):
    refused(FraudRule, program=program_of_card, name="r", **fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "APPROVE_UP_TO"},
        {"standin_max_transaction_minor": 10, "standin_max_daily_per_card_minor": 5},
        {"deadline_ms": 10},
        {"deadline_ms": 100, "redis_timeout_ms": 100},
        {"standin_allowed_mccs": ["food"]},
        {"breaker_failure_threshold": 0},
    ],
)
def test_given_raw_fallback_policy_when_bad_then_database_refuses(program_of_card, fields):
    refused(FallbackPolicy, program=program_of_card, **fields)


def test_given_raw_commando_record_when_controls_not_lists_then_database_refuses(
    program_of_card,
):
    refused(CommandoModeRecord, program=program_of_card, auth_controls={"a": 1})
    CommandoModeRecord.objects.create(program=program_of_card, auth_controls=[{"a": 1}])
