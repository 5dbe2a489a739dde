"""The admin pages for controls, limits, fraud rules and fallback: Ops edit through the
services (audited, errors as form errors), Support only looks."""

from __future__ import annotations

import pytest
from django.test import Client

from cards.models import (
    Cardholder,
    CommandoModeRecord,
    FallbackPolicy,
    FraudRule,
    SpendControl,
    VelocityLimit,
)
from ledger.models import AuditEvent
from tests.cards.factories import FraudRuleFactory, SpendControlFactory, VelocityLimitFactory

pytestmark = pytest.mark.django_db

MODELS = ["spendcontrol", "velocitylimit", "fraudrule", "fallbackpolicy", "commandomoderecord"]


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def configured(card):
    """One row of each configuration model, for the change pages."""
    program = card.cardholder.program
    return {
        "spendcontrol": SpendControlFactory(card=card, max_transaction_minor=12_345),
        "velocitylimit": VelocityLimitFactory(card=card),
        "fraudrule": FraudRuleFactory(program=program),
        "fallbackpolicy": FallbackPolicy.objects.create(program=program),
        "commandomoderecord": CommandoModeRecord.objects.create(program=program),
        "program": program,
        "cardholder": card.cardholder,
        "card": card,
    }


def change_url(name: str, row) -> str:
    return f"/admin/cards/{name}/{row.pk}/change/"


def test_given_ops_and_support_when_opening_list_change_and_scope_pages_then_200(
    ops_user, support_user, configured
):
    paths = [f"/admin/cards/{name}/" for name in MODELS]
    paths += [change_url(name, row) for name, row in configured.items()]
    for user in (ops_user, support_user):
        client = login(user)
        for path in paths:
            assert client.get(path).status_code == 200, (user.username, path)


def test_given_support_when_viewing_control_then_money_shown_in_currency(support_user, configured):
    page = login(support_user).get(change_url("spendcontrol", configured["spendcontrol"]))
    assert "123.45 USD" in page.content.decode()


def test_given_ops_when_opening_add_pages_then_200_and_support_403(ops_user, support_user, card):
    for name in MODELS:
        assert login(ops_user).get(f"/admin/cards/{name}/add/").status_code == 200, name
        assert login(support_user).get(f"/admin/cards/{name}/add/").status_code == 403, name


def test_given_support_when_posting_changes_then_403_and_nothing_changes(support_user, configured):
    client = login(support_user)
    rule = configured["fraudrule"]
    response = client.post(
        change_url("fraudrule", rule),
        {"kind": "cvv_mismatch", "mode": "on", "action": "decline", "params": "{}", "reason": "x"},
    )
    assert response.status_code == 403
    response = client.post("/admin/cards/spendcontrol/add/", {"card": configured["card"].pk})
    assert response.status_code == 403
    rule.refresh_from_db()
    assert rule.mode == FraudRule.Mode.SHADOW
    assert SpendControl.objects.count() == 1
    assert not AuditEvent.objects.exists()


def test_given_ops_when_adding_control_then_saved_by_service_with_reason(ops_user, card):
    # when
    response = login(ops_user).post(
        "/admin/cards/spendcontrol/add/",
        {"cardholder": card.cardholder.pk, "max_transaction": "150.00",
         "mcc_block": "7995,6051", "blocked_countries": "prk", "allowed_channels": ["ATM"],
         "reason": "fraud ring in the news"},
    )  # fmt: skip
    # then
    assert response.status_code == 302, response.content.decode()
    control = SpendControl.objects.get()
    assert control.cardholder == card.cardholder
    assert control.max_transaction_minor == 15_000
    assert control.mcc_block == ["6051", "7995"]
    assert control.blocked_countries == ["PRK"]
    event = AuditEvent.objects.get(action="set_spend_control")
    assert (event.actor, event.reason) == (ops_user, "fraud ring in the news")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"card": "CARD", "mcc_block": "79"}, "is not a 4-digit MCC"),
        ({"card": "CARD", "blocked_countries": "KP"}, "is not an ISO alpha-3"),
        ({"card": "CARD", "max_transaction": "1.005"}, "more decimals"),
        ({"card": "CARD", "max_transaction": "0"}, "whole number from 1"),
        ({}, "choose the program, cardholder or card"),
        ({"card": "CARD", "cardholder": "HOLDER"}, "not several"),
        ({"card": "CARD", "reason": ""}, "This field is required"),
    ],
)
def test_given_bad_input_when_adding_control_then_form_error_not_500_and_nothing_saved(
    ops_user, card, fields, message
):
    # given
    ids = {"CARD": card.pk, "HOLDER": card.cardholder.pk}
    data = {"reason": "r"} | {name: ids.get(value, value) for name, value in fields.items()}
    # when
    response = login(ops_user).post("/admin/cards/spendcontrol/add/", data)
    # then
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not SpendControl.objects.exists()
    assert not AuditEvent.objects.exists()


def test_given_ops_when_adding_fraud_rule_with_bad_params_then_form_error(ops_user, card):
    response = login(ops_user).post(
        "/admin/cards/fraudrule/add/",
        {"program": card.cardholder.program.pk, "name": "burst", "kind": "burst",
         "mode": "on", "action": "decline", "params": '{"count": 5}', "reason": "r"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "burst takes count, seconds" in response.content.decode()
    assert not FraudRule.objects.exists()


def test_given_ops_when_adding_fraud_rule_then_saved_and_audited(ops_user, card):
    response = login(ops_user).post(
        "/admin/cards/fraudrule/add/",
        {"program": card.cardholder.program.pk, "name": "burst", "kind": "burst",
         "mode": "shadow", "action": "flag", "params": '{"count": 5, "seconds": 60}',
         "reason": "trial in shadow"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()
    rule = FraudRule.objects.get()
    assert (rule.mode, rule.action, rule.params) == ("shadow", "flag", {"count": 5, "seconds": 60})
    assert AuditEvent.objects.get(action="set_fraud_rule").reason == "trial in shadow"


@pytest.mark.parametrize(("action", "mode"), [("turn_on", "on"), ("turn_off", "off")])
def test_given_rules_when_bulk_action_then_modes_set_and_audited(ops_user, card, action, mode):
    # given
    rules = FraudRuleFactory.create_batch(2, program=card.cardholder.program)
    # when
    login(ops_user).post(
        "/admin/cards/fraudrule/",
        {"action": action, "_selected_action": [rule.pk for rule in rules]},
    )
    # then
    assert set(FraudRule.objects.values_list("mode", flat=True)) == {mode}
    events = AuditEvent.objects.filter(action="set_fraud_rule_mode")
    assert events.count() == 2
    assert {event.reason for event in events} == {"changed in the admin by maker"}


def test_given_rule_on_when_shadow_action_then_shadow(ops_user, card):
    rule = FraudRuleFactory(program=card.cardholder.program, mode=FraudRule.Mode.ON)
    login(ops_user).post(
        "/admin/cards/fraudrule/", {"action": "shadow_mode", "_selected_action": [rule.pk]}
    )
    rule.refresh_from_db()
    assert rule.mode == FraudRule.Mode.SHADOW


def test_given_support_when_bulk_action_then_nothing_changes(support_user, card):
    rule = FraudRuleFactory(program=card.cardholder.program)
    login(support_user).post(
        "/admin/cards/fraudrule/", {"action": "turn_on", "_selected_action": [rule.pk]}
    )
    rule.refresh_from_db()
    assert rule.mode == FraudRule.Mode.SHADOW


def fallback_data(program, **overrides) -> dict:
    return {
        "program": program.pk, "mode": "APPROVE_UP_TO", "standin_max_transaction": "50.00",
        "standin_max_daily_per_card": "100.00", "standin_allowed_mccs": "5411,5814",
        "deadline_ms": 300, "redis_timeout_ms": 40, "breaker_failure_threshold": 5,
        "breaker_reset_seconds": 10, "reason": "availability first",
    } | overrides  # fmt: skip


def test_given_ops_when_adding_fallback_policy_then_saved_in_minor_units(ops_user, card):
    program = card.cardholder.program
    response = login(ops_user).post("/admin/cards/fallbackpolicy/add/", fallback_data(program))
    assert response.status_code == 302, response.content.decode()
    policy = FallbackPolicy.objects.get()
    assert (policy.standin_max_transaction_minor, policy.standin_max_daily_per_card_minor) == (
        5_000,
        10_000,
    )
    assert AuditEvent.objects.get(action="set_fallback_policy").actor == ops_user


def test_given_redis_timeout_over_deadline_when_adding_fallback_then_form_error(ops_user, card):
    data = fallback_data(card.cardholder.program, deadline_ms=100, redis_timeout_ms=150)
    response = login(ops_user).post("/admin/cards/fallbackpolicy/add/", data)
    assert response.status_code == 200
    assert "redis_timeout_ms must be a whole number from 1 to 99" in response.content.decode()
    assert not FallbackPolicy.objects.exists()


def test_given_ops_when_editing_commando_record_then_saved_with_reason(ops_user, configured):
    record = configured["commandomoderecord"]
    response = login(ops_user).post(
        change_url("commandomoderecord", record),
        {"program_gateway_funding_source_token": "pgfs_1", "auth_controls": "[]",
         "velocity_controls": '[{"velocity_window": "DAY"}]', "include_response_timeouts": "on",
         "notes": "sent to Marqeta", "reason": "quarterly review"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()
    record.refresh_from_db()
    assert record.include_response_timeouts
    assert record.velocity_controls == [{"velocity_window": "DAY"}]
    assert AuditEvent.objects.get(action="set_commando_mode_record").reason == "quarterly review"


def management_data(page) -> dict:
    """The inline formsets' management forms as the change page rendered them."""
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        for field in inline.formset.management_form:
            data[field.html_name] = field.value()
        for form in inline.formset.initial_forms:
            data[f"{form.prefix}-id"] = form.instance.pk
            data[f"{form.prefix}-{inline.formset.fk.name}"] = inline.formset.instance.pk
    return data


def prefix_of(page, model) -> str:
    [inline] = [i for i in page.context["inline_admin_formsets"] if i.formset.model is model]
    return inline.formset.prefix


def test_given_card_page_when_ops_add_limit_inline_then_saved_by_service_and_audited(
    ops_user, card
):
    # given
    client = login(ops_user)
    path = change_url("card", card)
    page = client.get(path)
    prefix = prefix_of(page, VelocityLimit)
    data = management_data(page) | {"expires_on": card.expires_on.isoformat()}
    data |= {f"{prefix}-TOTAL_FORMS": 1, f"{prefix}-0-window": "day",
             f"{prefix}-0-max_amount": "75.00", f"{prefix}-0-active": "on"}  # fmt: skip
    # when
    response = client.post(path, data)
    # then
    assert response.status_code == 302, response.context["inline_admin_formsets"]
    limit = VelocityLimit.objects.get()
    assert (limit.card, limit.window, limit.max_amount_minor) == (card, "day", 7_500)
    assert AuditEvent.objects.get(action="set_velocity_limit").reason == (
        "changed in the admin by maker"
    )


def test_given_card_page_when_bad_limit_inline_then_form_error_and_nothing_saved(ops_user, card):
    client = login(ops_user)
    path = change_url("card", card)
    page = client.get(path)
    prefix = prefix_of(page, VelocityLimit)
    data = management_data(page) | {"expires_on": card.expires_on.isoformat()}
    data |= {f"{prefix}-TOTAL_FORMS": 1, f"{prefix}-0-window": "day", f"{prefix}-0-active": "on"}
    response = client.post(path, data)
    assert response.status_code == 200
    assert "a limit caps an amount, a count or both" in response.content.decode()
    assert not VelocityLimit.objects.exists()


def test_given_program_page_when_control_inline_edited_then_saved_by_service(ops_user, configured):
    # given
    program = configured["program"]
    client = login(ops_user)
    path = change_url("program", program)
    page = client.get(path)
    prefix = prefix_of(page, SpendControl)
    data = management_data(page) | {
        "name": program.name, "timezone": "America/New_York", "default_hold_expiry_days": 7,
        f"{prefix}-TOTAL_FORMS": 1, f"{prefix}-0-mcc_block": "7995",
    }  # fmt: skip
    # when
    response = client.post(path, data)
    # then
    assert response.status_code == 302, response.content.decode()
    assert SpendControl.objects.get(program=program).mcc_block == ["7995"]
    program.refresh_from_db()
    assert program.timezone == "America/New_York"
    assert {"update_program", "set_spend_control"} <= set(
        AuditEvent.objects.values_list("action", flat=True)
    )


def test_given_program_page_when_timezone_invalid_then_form_error(ops_user, configured):
    program = configured["program"]
    client = login(ops_user)
    path = change_url("program", program)
    data = management_data(client.get(path)) | {
        "name": program.name, "timezone": "Mars/Olympus", "default_hold_expiry_days": 7,
    }  # fmt: skip
    response = client.post(path, data)
    assert response.status_code == 200
    assert "is not an IANA timezone" in response.content.decode()


def test_given_ops_when_suspending_cardholder_in_admin_then_status_changes_and_audited(
    ops_user, card
):
    login(ops_user).post(
        "/admin/cards/cardholder/", {"action": "suspend", "_selected_action": [card.cardholder.pk]}
    )
    assert Cardholder.objects.get().status == Cardholder.Status.SUSPENDED
    assert AuditEvent.objects.get(action="set_cardholder_status").actor == ops_user
