"""Services that change controls, limits, fraud rules and fallback: validated, audited, and
announced to the gateway's cache only once committed."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from cards import services
from cards.errors import (
    CardholderClosed,
    InvalidChannel,
    InvalidCommandoModeRecord,
    InvalidCountry,
    InvalidFallbackPolicy,
    InvalidFraudRule,
    InvalidLimit,
    InvalidMcc,
    InvalidMccGroup,
    InvalidRuleParams,
    InvalidScope,
    InvalidTimezone,
    InvalidWindow,
)
from cards.models import (
    FRAUD_PARAM_KEYS,
    Card,
    Cardholder,
    FallbackPolicy,
    FraudRule,
    SpendControl,
    VelocityLimit,
)
from cards.selectors import card_ids_for_scope, remaining_limits
from cards.signals import card_config_changed
from config.errors import InvalidAmount
from ledger.errors import ReasonRequired
from ledger.models import AuditEvent
from tests.cards.factories import CardFactory, CardholderFactory, VelocityLimitFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def announced():
    """Every `card_config_changed` sent during the test, as lists of card ids."""
    sent: list[list[int]] = []

    def listener(sender, card_ids, **_):
        sent.append(card_ids)

    card_config_changed.connect(listener, dispatch_uid="test-listener")
    yield sent
    card_config_changed.disconnect(dispatch_uid="test-listener")


@pytest.fixture
def program(card):
    return card.cardholder.program


# --- spend controls --------------------------------------------------------------------------


def test_given_card_when_control_set_then_normalized_saved_and_audited(card, ops_user):
    # when
    control = services.set_spend_control(
        scope_obj=card,
        actor=ops_user,
        reason="customer asked",
        max_transaction_minor=20_000,
        mcc_block=["7995", "6051", "7995"],
        blocked_countries=["prk", " irn"],
        allowed_channels=["ATM", "CARD_PRESENT"],
    )
    # then
    control.refresh_from_db()
    assert control.card == card
    assert control.mcc_block == ["6051", "7995"]
    assert control.blocked_countries == ["IRN", "PRK"]
    assert control.allowed_channels == ["CARD_PRESENT", "ATM"]
    event = AuditEvent.objects.get(action="set_spend_control")
    assert (event.actor, event.reason, event.before) == (ops_user, "customer asked", None)
    assert event.after["max_transaction_minor"] == 20_000
    assert event.target_id == str(control.pk)


def test_given_control_when_set_again_then_other_fields_kept_and_before_after_audited(
    card, ops_user
):
    # given
    services.set_spend_control(scope_obj=card, actor=ops_user, reason="r", mcc_block=["7995"])
    # when
    services.set_spend_control(scope_obj=card, actor=ops_user, reason="r2", mcc_allow=["5411"])
    # then
    control = SpendControl.objects.get()
    assert (control.mcc_block, control.mcc_allow) == (["7995"], ["5411"])
    event = AuditEvent.objects.filter(action="set_spend_control").latest("pk")
    assert event.before["mcc_allow"] == []
    assert event.after["mcc_allow"] == ["5411"]


def test_given_same_values_when_set_again_then_no_new_audit_event(card, ops_user):
    services.set_spend_control(scope_obj=card, actor=ops_user, reason="r", mcc_block=["7995"])
    services.set_spend_control(scope_obj=card, actor=ops_user, reason="r", mcc_block=["7995"])
    assert AuditEvent.objects.filter(action="set_spend_control").count() == 1


def test_given_mcc_groups_when_control_set_then_audit_names_them(card, ops_user, program):
    # given
    gambling = services.set_mcc_group(program=program, name="gambling", mccs=["7995"])
    # when
    services.set_spend_control(
        scope_obj=program, actor=ops_user, reason="no gambling", mcc_groups_block=[gambling]
    )
    # then
    assert list(SpendControl.objects.get().mcc_groups_block.all()) == [gambling]
    event = AuditEvent.objects.get(action="set_spend_control")
    assert event.after["mcc_groups_block"] == [str(gambling)]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"mcc_allow": ["541"]}, InvalidMcc),
        ({"mcc_block": ["54111"]}, InvalidMcc),
        ({"mcc_block": [5411]}, InvalidMcc),
        ({"mcc_block": "5411"}, InvalidMcc),
        ({"blocked_countries": ["KP"]}, InvalidCountry),
        ({"blocked_countries": ["P1K"]}, InvalidCountry),
        ({"allowed_channels": ["MOTO"]}, InvalidChannel),
        ({"max_transaction_minor": 0}, InvalidAmount),
        ({"max_transaction_minor": -5}, InvalidAmount),
        ({"max_transaction_minor": True}, InvalidAmount),
        ({"max_transaction_minor": "100"}, InvalidAmount),
    ],
)
def test_given_bad_value_when_control_set_then_refused_with_code_and_nothing_written(
    card, ops_user, announced, django_capture_on_commit_callbacks, fields, error
):
    # when
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(error) as refused,
    ):
        services.set_spend_control(scope_obj=card, actor=ops_user, reason="r", **fields)
    # then
    assert refused.value.code == error.code
    assert not SpendControl.objects.exists()
    assert not AuditEvent.objects.exists()
    assert announced == []


def test_given_group_of_another_program_when_control_set_then_invalid_mcc_group(card, ops_user):
    other = CardFactory().cardholder.program
    group = services.set_mcc_group(program=other, name="lodging", mccs=["7011"])
    with pytest.raises(InvalidMccGroup):
        services.set_spend_control(
            scope_obj=card, actor=ops_user, reason="r", mcc_groups_allow=[group]
        )
    assert not SpendControl.objects.exists()


def test_given_person_without_reason_when_control_set_then_reason_required(card, ops_user):
    with pytest.raises(ReasonRequired):
        services.set_spend_control(scope_obj=card, actor=ops_user, reason="  ", mcc_block=[])
    assert not SpendControl.objects.exists()


def test_given_system_actor_when_control_set_then_no_reason_needed(card):
    services.set_spend_control(scope_obj=card, actor=None, reason="", mcc_block=["7995"])
    assert AuditEvent.objects.get().actor_label == "system"


def test_given_something_else_when_used_as_scope_then_invalid_scope(card, ops_user):
    with pytest.raises(InvalidScope):
        services.set_spend_control(scope_obj=ops_user, actor=ops_user, reason="r")


def test_given_unknown_field_when_control_set_then_type_error(card, ops_user):
    with pytest.raises(TypeError, match="mcc_alow"):
        services.set_spend_control(scope_obj=card, actor=ops_user, reason="r", mcc_alow=[])


# --- velocity limits ---------------------------------------------------------------------------


def test_given_limit_when_set_twice_for_one_window_then_one_row_replaced(card, ops_user):
    # when
    services.set_velocity_limit(
        scope_obj=card, window="day", actor=ops_user, reason="r", max_amount_minor=10_000
    )
    services.set_velocity_limit(
        scope_obj=card, window="day", actor=ops_user, reason="r", max_count=3
    )
    # then
    limit = VelocityLimit.objects.get()
    assert (limit.window, limit.max_amount_minor, limit.max_count) == ("day", None, 3)
    assert AuditEvent.objects.filter(action="set_velocity_limit").count() == 2


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"window": "year", "max_count": 1}, InvalidWindow),
        ({"window": "day"}, InvalidLimit),
        ({"window": "day", "max_count": 0}, InvalidLimit),
        ({"window": "day", "max_count": 2.0}, InvalidLimit),
        ({"window": "day", "max_amount_minor": 0}, InvalidAmount),
        ({"window": "day", "max_count": 1, "active": "yes"}, InvalidLimit),
    ],
)
def test_given_bad_limit_when_set_then_refused_and_nothing_written(card, ops_user, fields, error):
    with pytest.raises(error):
        services.set_velocity_limit(scope_obj=card, actor=ops_user, reason="r", **fields)
    assert not VelocityLimit.objects.exists()
    assert not AuditEvent.objects.exists()


def test_given_limit_when_removed_then_gone_and_audit_keeps_it(card, ops_user):
    # given
    limit = VelocityLimitFactory(card=card, max_amount_minor=7_000)
    # when
    services.remove_velocity_limit(limit=limit, actor=ops_user, reason="no longer needed")
    # then
    assert not VelocityLimit.objects.exists()
    event = AuditEvent.objects.get(action="remove_velocity_limit")
    assert event.before["max_amount_minor"] == 7_000
    assert event.after is None


def test_given_card_limits_when_replaced_then_exactly_the_given_windows_remain(card, ops_user):
    # given
    VelocityLimitFactory(card=card, window="day")
    VelocityLimitFactory(card=card, window="month")
    VelocityLimitFactory(cardholder=card.cardholder, card=None, window="month")
    # when
    services.replace_card_controls(
        card=card,
        actor=ops_user,
        reason="r",
        control={"mcc_block": ["7995"]},
        limits=[{"window": "day", "max_count": 3}, {"window": "week", "max_amount_minor": 900}],
    )
    # then
    windows = sorted(VelocityLimit.objects.filter(card=card).values_list("window", flat=True))
    assert windows == ["day", "week"]
    assert VelocityLimit.objects.filter(cardholder=card.cardholder).count() == 1


def test_given_one_bad_limit_when_replacing_then_nothing_changes(card, ops_user):
    # given
    VelocityLimitFactory(card=card, window="month", max_amount_minor=5_000)
    # when
    with pytest.raises(InvalidWindow):
        services.replace_card_controls(
            card=card,
            actor=ops_user,
            reason="r",
            control={"mcc_block": ["7995"]},
            limits=[{"window": "day", "max_count": 3}, {"window": "fortnight", "max_count": 1}],
        )
    # then
    assert list(VelocityLimit.objects.values_list("window", "max_amount_minor")) == [
        ("month", 5_000)
    ]
    assert not SpendControl.objects.exists()
    assert not AuditEvent.objects.exists()


def test_given_same_window_twice_when_replacing_then_invalid_limit(card, ops_user):
    with pytest.raises(InvalidLimit):
        services.replace_card_controls(
            card=card,
            actor=ops_user,
            reason="r",
            control={},
            limits=[{"window": "day", "max_count": 3}, {"window": "day", "max_count": 4}],
        )


# --- fraud rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("cvv_mismatch", {}),
        ("avs_mismatch", {}),
        ("card_not_present", {}),
        ("high_risk_mcc", {"mccs": ["7995", "5993"]}),
        ("foreign_country", {"home_country": "USA"}),
        ("burst", {"count": 5, "seconds": 60}),
        ("amount_over", {"amount_minor": 50_000}),
        ("amount_outlier", {"multiple": 4, "min_history": 10}),
    ],
)
def test_given_valid_params_when_rule_set_then_saved_in_shadow_mode(
    program, ops_user, kind, params
):
    rule = services.set_fraud_rule(
        program=program, name=kind, kind=kind, params=params, actor=ops_user, reason="r"
    )
    rule.refresh_from_db()
    assert (rule.kind, rule.mode, rule.action) == (kind, "shadow", "decline")
    assert set(rule.params) == set(FRAUD_PARAM_KEYS[kind])


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("cvv_mismatch", {"threshold": 1}),
        ("high_risk_mcc", {}),
        ("high_risk_mcc", {"mccs": []}),
        ("high_risk_mcc", {"mccs": ["79"]}),
        ("high_risk_mcc", {"mccs": "7995"}),
        ("foreign_country", {"home_country": "US"}),
        ("foreign_country", {"home_country": 840}),
        ("burst", {"count": 5}),
        ("burst", {"count": 0, "seconds": 60}),
        ("burst", {"count": 5, "seconds": "60"}),
        ("amount_over", {"amount_minor": 12.5}),
        ("amount_over", {"amount_minor": -1}),
        ("amount_outlier", {"multiple": 1, "min_history": 10}),
        ("amount_outlier", {"multiple": 3, "min_history": 0}),
        ("amount_outlier", {"multiple": True, "min_history": 10}),
        ("amount_outlier", {"multiple": 3, "min_history": 10, "extra": 1}),
        ("burst", ["count", "seconds"]),
    ],
)
def test_given_bad_params_when_rule_set_then_invalid_rule_params_and_nothing_written(
    program, ops_user, kind, params
):
    with pytest.raises(InvalidRuleParams) as refused:
        services.set_fraud_rule(
            program=program, name="r", kind=kind, params=params, actor=ops_user, reason="r"
        )
    assert refused.value.code == "invalid_rule_params"
    assert not FraudRule.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "velocity"},
        {"kind": "burst", "mode": "loud"},
        {"kind": "cvv_mismatch", "action": "block"},
        {"kind": "cvv_mismatch", "name": " "},
    ],
)
def test_given_unknown_kind_mode_or_action_when_rule_set_then_invalid_fraud_rule(
    program, ops_user, fields
):
    with pytest.raises(InvalidFraudRule):
        services.set_fraud_rule(
            program=program, actor=ops_user, reason="r", **{"name": "r", **fields}
        )


def test_given_rule_when_mode_changed_then_audited_and_cards_announced(
    card, program, ops_user, announced, django_capture_on_commit_callbacks
):
    # given
    rule = services.set_fraud_rule(
        program=program, name="cvv", kind="cvv_mismatch", actor=ops_user, reason="r"
    )
    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.set_fraud_rule_mode(rule=rule, mode="on", actor=ops_user, reason="tested")
    # then
    rule.refresh_from_db()
    assert rule.mode == "on"
    event = AuditEvent.objects.get(action="set_fraud_rule_mode")
    assert (event.before["mode"], event.after["mode"]) == ("shadow", "on")
    assert announced == [[card.pk]]


# --- fallback policy and Commando Mode record -----------------------------------------------


def test_given_program_when_fallback_set_then_defaults_kept_and_audited(program, ops_user):
    # when
    policy = services.set_fallback_policy(
        program=program,
        actor=ops_user,
        reason="availability first",
        mode="APPROVE_UP_TO",
        standin_max_transaction_minor=5_000,
        standin_max_daily_per_card_minor=20_000,
        standin_allowed_mccs=["5411", "5814"],
    )
    # then
    policy.refresh_from_db()
    assert policy.mode == FallbackPolicy.Mode.APPROVE_UP_TO
    assert (policy.deadline_ms, policy.redis_timeout_ms) == (250, 150)
    assert (policy.breaker_failure_threshold, policy.breaker_reset_seconds) == (5, 10)
    assert AuditEvent.objects.get(action="set_fallback_policy").reason == "availability first"


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "APPROVE_ALL"},
        {"mode": "APPROVE_UP_TO"},  # without a stand-in maximum
        {"standin_max_transaction_minor": 5_000, "standin_max_daily_per_card_minor": 4_000},
        {"deadline_ms": 19},
        {"deadline_ms": 2501},
        {"deadline_ms": 100, "redis_timeout_ms": 100},
        {"redis_timeout_ms": 0},
        {"breaker_failure_threshold": 0},
        {"breaker_reset_seconds": 3601},
    ],
)
def test_given_bad_fallback_when_set_then_invalid_fallback_policy(program, ops_user, fields):
    with pytest.raises(InvalidFallbackPolicy) as refused:
        services.set_fallback_policy(program=program, actor=ops_user, reason="r", **fields)
    assert refused.value.code == "invalid_fallback_policy"
    assert not FallbackPolicy.objects.exists()


def test_given_bad_standin_mcc_when_fallback_set_then_invalid_mcc(program, ops_user):
    with pytest.raises(InvalidMcc):
        services.set_fallback_policy(
            program=program, actor=ops_user, reason="r", standin_allowed_mccs=["food"]
        )


def test_given_program_when_commando_record_set_then_saved_audited_not_announced(
    card, program, ops_user, announced, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        record = services.set_commando_mode_record(
            program=program,
            actor=ops_user,
            reason="agreed with Marqeta",
            program_gateway_funding_source_token="pgfs_1",
            velocity_controls=[{"amount_limit": 100, "velocity_window": "DAY"}],
            real_time_standin_enabled=True,
            include_response_timeouts=True,
        )
    # then
    record.refresh_from_db()
    assert record.velocity_controls == [{"amount_limit": 100, "velocity_window": "DAY"}]
    assert record.include_response_timeouts
    assert AuditEvent.objects.get(action="set_commando_mode_record").actor == ops_user
    assert announced == []  # Marqeta's stand-in is not in our cache


@pytest.mark.parametrize(
    "fields",
    [
        {"auth_controls": {"a": 1}},
        {"velocity_controls": [1, 2]},
        {"include_connection_errors": "yes"},
        {"program_gateway_funding_source_token": "x" * 37},
        {"notes": None},
    ],
)
def test_given_bad_commando_record_when_set_then_refused(program, ops_user, fields):
    with pytest.raises(InvalidCommandoModeRecord):
        services.set_commando_mode_record(program=program, actor=ops_user, reason="r", **fields)


# --- card_config_changed ---------------------------------------------------------------------


def test_given_control_change_when_not_yet_committed_then_no_signal_until_commit(
    card, ops_user, announced, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        services.set_spend_control(scope_obj=card, actor=ops_user, reason="r", mcc_block=["7995"])
        # then: nothing yet inside the transaction
        assert announced == []
    assert announced == []
    for callback in callbacks:
        callback()
    assert announced == [[card.pk]]


def test_given_program_change_when_committed_then_every_card_of_the_program_announced(
    card, program, ops_user, announced, django_capture_on_commit_callbacks
):
    # given
    sibling = CardFactory(cardholder=card.cardholder)
    other_holder_card = CardFactory(cardholder=CardholderFactory(program=program))
    CardFactory()  # another program's card
    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.set_velocity_limit(
            scope_obj=program, window="month", actor=ops_user, reason="r", max_count=100
        )
    # then
    assert announced == [sorted([card.pk, sibling.pk, other_holder_card.pk])]


def test_given_cardholder_change_when_committed_then_their_cards_announced(
    card, ops_user, announced, django_capture_on_commit_callbacks
):
    sibling = CardFactory(cardholder=card.cardholder)
    with django_capture_on_commit_callbacks(execute=True):
        services.set_spend_control(
            scope_obj=card.cardholder, actor=ops_user, reason="r", blocked_countries=["PRK"]
        )
    assert announced == [sorted([card.pk, sibling.pk])]


def test_given_refused_change_when_rolled_back_then_no_signal(
    card, program, ops_user, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvalidLimit):
        services.replace_card_controls(
            card=card,
            actor=ops_user,
            reason="r",
            control={"mcc_block": ["7995"]},
            limits=[{"window": "day"}],
        )
    assert announced == []


def test_given_card_when_state_set_then_audited_and_announced_on_commit(
    card, ops_user, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.set_card_state(card=card, state=Card.State.SUSPENDED, actor=ops_user, reason="r")
    assert announced == [[card.pk]]
    assert AuditEvent.objects.get(action="set_card_state").after["state"] == "SUSPENDED"


def test_given_cardholder_when_suspended_then_audited_and_all_cards_announced(
    card, ops_user, announced, django_capture_on_commit_callbacks
):
    # given
    sibling = CardFactory(cardholder=card.cardholder)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.set_cardholder_status(
            cardholder=card.cardholder,
            status=Cardholder.Status.SUSPENDED,
            actor=ops_user,
            reason="chargeback investigation",
        )
    # then
    assert Cardholder.objects.get().status == "SUSPENDED"
    assert announced == [sorted([card.pk, sibling.pk])]
    event = AuditEvent.objects.get(action="set_cardholder_status")
    assert (event.before["status"], event.after["status"]) == ("ACTIVE", "SUSPENDED")


def test_given_closed_cardholder_when_reactivated_then_refused(card, ops_user):
    holder = services.set_cardholder_status(
        cardholder=card.cardholder, status=Cardholder.Status.CLOSED, actor=ops_user, reason="r"
    )
    with pytest.raises(CardholderClosed):
        services.set_cardholder_status(
            cardholder=holder, status=Cardholder.Status.ACTIVE, actor=ops_user, reason="r"
        )


def test_given_program_when_timezone_changed_then_cards_announced_else_not(
    card, program, ops_user, announced, django_capture_on_commit_callbacks
):
    # when: a rename leaves every cache record as it was
    with django_capture_on_commit_callbacks(execute=True):
        services.update_program(
            program=program,
            actor=ops_user,
            reason="r",
            name="renamed",
            timezone_name=program.timezone,
            default_hold_expiry_days=7,
        )
    assert announced == []
    # when: the timezone moves calendar windows
    with django_capture_on_commit_callbacks(execute=True):
        services.update_program(
            program=program,
            actor=ops_user,
            reason="r",
            name="renamed",
            timezone_name="Europe/Warsaw",
            default_hold_expiry_days=7,
        )
    # then
    assert announced == [[card.pk]]
    assert AuditEvent.objects.filter(action="update_program").count() == 2


def test_given_bad_timezone_when_program_updated_then_refused(program, ops_user):
    with pytest.raises(InvalidTimezone):
        services.update_program(
            program=program,
            actor=ops_user,
            reason="r",
            name=program.name,
            timezone_name="Mars/Olympus",
            default_hold_expiry_days=7,
        )


def test_given_mcc_group_change_when_committed_then_program_cards_announced(
    card, program, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.set_mcc_group(program=program, name="lodging", mccs=["7011"])
    assert announced == [[card.pk]]


def test_given_scopes_when_card_ids_selected_then_exactly_one_scope_needed(card):
    assert card_ids_for_scope(card=card) == [card.pk]
    assert card_ids_for_scope(cardholder=card.cardholder) == [card.pk]
    with pytest.raises(InvalidScope):
        card_ids_for_scope(card=card, cardholder=card.cardholder)
    with pytest.raises(InvalidScope):
        card_ids_for_scope()


def test_given_anonymous_user_when_control_set_then_recorded_as_system(card):
    services.set_spend_control(scope_obj=card, actor=AnonymousUser(), reason="", mcc_block=[])
    assert AuditEvent.objects.get().actor_label == "system"


# --- remaining limits ----------------------------------------------------------------------------


def test_given_usage_when_remaining_limits_read_then_per_limit_math_never_below_zero(card):
    # given
    program_month = VelocityLimitFactory(
        program=card.cardholder.program,
        card=None,
        window="month",
        max_amount_minor=100_000,
        max_count=None,
    )
    card_day = VelocityLimitFactory(card=card, window="day", max_amount_minor=5_000, max_count=3)
    VelocityLimitFactory(card=card, window="week", active=False)
    usage = {("user", "month"): (40_000, 12), ("card", "day"): (7_500, 2), ("card", "week"): (1, 1)}
    # when
    rows = remaining_limits(card=card, usage=usage)
    # then
    assert rows == [
        {
            "id": f"card:{card_day.pk}:day",
            "scope": "card",
            "window": "day",
            "max_amount": 5_000,
            "used_amount": 7_500,
            "remaining_amount": 0,
            "max_count": 3,
            "used_count": 2,
            "remaining_count": 1,
        },
        {
            "id": f"program:{program_month.pk}:month",
            "scope": "program",
            "window": "month",
            "max_amount": 100_000,
            "used_amount": 40_000,
            "remaining_amount": 60_000,
            "max_count": None,
            "used_count": 12,
            "remaining_count": None,
        },
    ]


def test_given_no_usage_when_remaining_limits_read_then_everything_left(card):
    VelocityLimitFactory(card=card, window="lifetime", max_amount_minor=None, max_count=10)
    [row] = remaining_limits(card=card, usage={})
    assert (row["used_count"], row["remaining_count"], row["remaining_amount"]) == (0, 10, None)


def test_given_cardholder_when_card_created_then_announced_on_commit(
    card, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        new_card = services.create_card(cardholder=card.cardholder)
    assert announced == [[new_card.pk]]
