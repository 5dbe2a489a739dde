"""Compiling a card's configuration for the gateway's cache: strictest wins, the contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cards.controls import card_cache_record, effective_controls, fraud_rules, timezone_table
from cards.models import Channel, FallbackPolicy, FraudRule, VelocityWindow
from cards.services import set_mcc_group
from tests.cards.factories import (
    CardFactory,
    FraudRuleFactory,
    SpendControlFactory,
    VelocityLimitFactory,
)

pytestmark = pytest.mark.django_db

NEW_YORK = "America/New_York"
EST, EDT = -5 * 3600, -4 * 3600
SPRING_FORWARD_2026 = int(datetime(2026, 3, 8, 7, tzinfo=UTC).timestamp())  # 02:00 EST
FALL_BACK_2026 = int(datetime(2026, 11, 1, 6, tzinfo=UTC).timestamp())  # 02:00 EDT


@pytest.fixture
def card():
    return CardFactory(cardholder__program__timezone=NEW_YORK)


def scopes(card) -> dict:
    """One spend control kwarg per scope of `card`."""
    return {
        "program": {"program": card.cardholder.program, "card": None},
        "cardholder": {"cardholder": card.cardholder, "card": None},
        "card": {"card": card},
    }


def test_given_no_controls_when_compiled_then_nothing_is_restricted(card):
    # when
    controls = effective_controls(card=card)
    # then
    assert controls == {
        "v": 1,
        "max_txn": None,
        "mcc_allow": None,
        "mcc_block": [],
        "country_block": [],
        "channels": None,
        "limits": [],
    }


def test_given_max_per_scope_when_compiled_then_the_lowest_wins(card):
    # given
    by_scope = scopes(card)
    SpendControlFactory(**by_scope["program"], max_transaction_minor=100_000)
    SpendControlFactory(**by_scope["cardholder"], max_transaction_minor=25_000)
    SpendControlFactory(**by_scope["card"], max_transaction_minor=None)
    # when / then
    assert effective_controls(card=card)["max_txn"] == 25_000


def test_given_allow_lists_and_groups_when_compiled_then_intersection_with_groups_expanded(card):
    # given: the program allows food and the lodging group; the card allows coffee and hotels
    program = card.cardholder.program
    lodging = set_mcc_group(program=program, name="lodging", mccs=["3501", "7011"])
    by_scope = scopes(card)
    SpendControlFactory(
        **by_scope["program"], mcc_allow=["5812", "5814"], mcc_groups_allow=[lodging]
    )
    SpendControlFactory(**by_scope["cardholder"], mcc_allow=[])  # empty: no allow-list
    SpendControlFactory(**by_scope["card"], mcc_allow=["5814", "7011", "5999"])
    # when
    controls = effective_controls(card=card)
    # then
    assert controls["mcc_allow"] == ["5814", "7011"]


def test_given_disjoint_allow_lists_when_compiled_then_nothing_allowed_not_everything(card):
    by_scope = scopes(card)
    SpendControlFactory(**by_scope["program"], mcc_allow=["5812"])
    SpendControlFactory(**by_scope["card"], mcc_allow=["5411"])
    assert effective_controls(card=card)["mcc_allow"] == []


def test_given_blocks_per_scope_when_compiled_then_union_sorted_with_groups(card):
    # given
    gambling = set_mcc_group(program=card.cardholder.program, name="gambling", mccs=["7995"])
    by_scope = scopes(card)
    SpendControlFactory(**by_scope["program"], mcc_block=["6051"], blocked_countries=["PRK", "IRN"])
    SpendControlFactory(**by_scope["cardholder"], mcc_groups_block=[gambling])
    SpendControlFactory(**by_scope["card"], mcc_block=["4829", "6051"], blocked_countries=["CUB"])
    # when
    controls = effective_controls(card=card)
    # then
    assert controls["mcc_block"] == ["4829", "6051", "7995"]
    assert controls["country_block"] == ["CUB", "IRN", "PRK"]


def test_given_channel_lists_when_compiled_then_intersection_and_empty_means_all(card):
    # given
    by_scope = scopes(card)
    SpendControlFactory(**by_scope["program"], allowed_channels=[])
    SpendControlFactory(**by_scope["cardholder"], allowed_channels=[Channel.ATM, Channel.ECOMMERCE])
    SpendControlFactory(**by_scope["card"], allowed_channels=[Channel.ECOMMERCE, Channel.ATM])
    # when / then
    assert effective_controls(card=card)["channels"] == ["ECOMMERCE", "ATM"]


def test_given_limits_in_every_scope_when_compiled_then_all_active_listed_sorted_by_id(card):
    # given
    by_scope = scopes(card)
    program_day = VelocityLimitFactory(**by_scope["program"], max_amount_minor=100_000)
    holder_week = VelocityLimitFactory(
        **by_scope["cardholder"], window=VelocityWindow.WEEK, max_amount_minor=None, max_count=20
    )
    card_day = VelocityLimitFactory(**by_scope["card"], max_amount_minor=30_000, max_count=5)
    VelocityLimitFactory(**by_scope["card"], window=VelocityWindow.MONTH, active=False)
    other_card = CardFactory(cardholder=card.cardholder)
    VelocityLimitFactory(card=other_card)  # another card's limit is not this card's
    # when
    limits = effective_controls(card=card)["limits"]
    # then
    assert limits == [
        {
            "id": f"card:{card_day.pk}:day",
            "scope": "card",
            "counter": "card",
            "window": "day",
            "max_amount": 30_000,
            "max_count": 5,
        },
        {
            "id": f"cardholder:{holder_week.pk}:week",
            "scope": "cardholder",
            "counter": "user",
            "window": "week",
            "max_amount": None,
            "max_count": 20,
        },
        {
            "id": f"program:{program_day.pk}:day",
            "scope": "program",
            "counter": "user",
            "window": "day",
            "max_amount": 100_000,
            "max_count": None,
        },
    ]


def test_given_rules_in_each_mode_when_listed_then_off_rules_left_out(card):
    # given
    program = card.cardholder.program
    burst = FraudRuleFactory(
        program=program,
        name="burst",
        kind=FraudRule.Kind.BURST,
        mode=FraudRule.Mode.ON,
        params={"count": 5, "seconds": 60},
    )
    cvv = FraudRuleFactory(program=program, name="cvv", action=FraudRule.Action.FLAG)
    FraudRuleFactory(program=program, name="off", mode=FraudRule.Mode.OFF)
    FraudRuleFactory(name="other program")
    # when / then
    assert fraud_rules(program=program) == [
        {
            "id": burst.pk,
            "name": "burst",
            "kind": "burst",
            "mode": "on",
            "action": "decline",
            "params": {"count": 5, "seconds": 60},
        },
        {
            "id": cvv.pk,
            "name": "cvv",
            "kind": "cvv_mismatch",
            "mode": "shadow",
            "action": "flag",
            "params": {},
        },
    ]


def local_offset(table: list[list[int]], at: datetime) -> int:
    """What the Lua script does: the offset of the last period starting at or before `at`."""
    moment = int(at.timestamp())
    return [offset for start, offset in table if start <= moment][-1]


def test_given_new_york_when_table_built_then_2026_dst_changes_exact_to_the_second():
    # when
    table = timezone_table(tz_name=NEW_YORK, around=datetime(2026, 6, 1, 12, tzinfo=UTC))
    # then
    assert [SPRING_FORWARD_2026, EDT] in table
    assert [FALL_BACK_2026, EST] in table
    starts = [start for start, _ in table]
    assert starts == sorted(starts)
    assert all(a[1] != b[1] for a, b in zip(table, table[1:], strict=False))


def test_given_table_when_read_like_lua_then_matches_zoneinfo_around_each_change():
    # given
    zone = ZoneInfo(NEW_YORK)
    table = timezone_table(tz_name=NEW_YORK, around=datetime(2026, 6, 1, tzinfo=UTC))
    # when / then: one second either side of each 2026 change, and hourly across the year
    moments = [
        datetime.fromtimestamp(change + delta, UTC)
        for change in (SPRING_FORWARD_2026, FALL_BACK_2026)
        for delta in (-1, 0, 1)
    ]
    moments += [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(0, 8760, 7)]
    for moment in moments:
        expected = moment.astimezone(zone).utcoffset() // timedelta(seconds=1)
        assert local_offset(table, moment) == expected, moment


def test_given_around_when_table_built_then_it_covers_a_year_back_and_two_ahead():
    # given
    around = datetime(2026, 6, 1, 12, tzinfo=UTC)
    # when
    table = timezone_table(tz_name=NEW_YORK, around=around)
    # then
    assert table[0][0] <= int(around.replace(year=2025).timestamp())
    assert table[0][1] == EDT  # June 2025 is summer time
    assert table[-1] == [int(datetime(2028, 3, 12, 7, tzinfo=UTC).timestamp()), EDT]


def test_given_zone_without_dst_when_table_built_then_one_period():
    table = timezone_table(tz_name="UTC", around=datetime(2026, 6, 1, tzinfo=UTC))
    assert len(table) == 1
    assert table[0][1] == 0


def test_given_naive_around_when_table_built_then_refused():
    with pytest.raises(ValueError, match="aware"):
        timezone_table(tz_name=NEW_YORK, around=datetime(2026, 6, 1))  # noqa: DTZ001


def test_given_configured_card_when_cache_record_built_then_strings_in_the_contract(card):
    # given
    program = card.cardholder.program
    SpendControlFactory(card=card, max_transaction_minor=20_000, blocked_countries=["PRK"])
    FraudRuleFactory(program=program, name="cvv")
    FallbackPolicy.objects.create(
        program=program,
        mode=FallbackPolicy.Mode.APPROVE_UP_TO,
        standin_max_transaction_minor=5_000,
        standin_max_daily_per_card_minor=10_000,
        standin_allowed_mccs=["5814", "5411"],
    )
    now = datetime(2026, 6, 1, tzinfo=UTC)
    # when
    record = card_cache_record(card=card, now=now)
    # then
    assert set(record) == {
        "state",
        "user",
        "holder_status",
        "currency",
        "controls",
        "fraud",
        "tz",
        "fallback",
    }
    assert all(isinstance(value, str) for value in record.values())
    assert record["state"] == "ACTIVE"
    assert record["user"] == card.cardholder.token
    assert record["holder_status"] == "ACTIVE"
    assert record["currency"] == "USD"
    assert json.loads(record["controls"]) == effective_controls(card=card)
    assert json.loads(record["controls"])["max_txn"] == 20_000
    assert json.loads(record["fraud"]) == fraud_rules(program=program)
    assert json.loads(record["tz"]) == timezone_table(tz_name=NEW_YORK, around=now)
    assert record["fallback"] == (
        '{"max_daily":10000,"max_txn":5000,"mccs":["5411","5814"],"mode":"APPROVE_UP_TO"}'
    )
    assert " " not in record["controls"]  # compact, sorted keys: same config, same bytes


def test_given_no_fallback_policy_when_cache_record_built_then_decline_all(card):
    record = card_cache_record(card=card, now=datetime(2026, 6, 1, tzinfo=UTC))
    assert json.loads(record["fallback"]) == {
        "mode": "DECLINE_ALL",
        "max_txn": 0,
        "max_daily": 0,
        "mccs": [],
    }
