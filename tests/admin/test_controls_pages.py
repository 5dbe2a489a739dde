"""Spend controls with a preview of the effective limits, fraud rules with their hits of the
last 24 hours, the fallback policy with this process's breaker, the Commando Mode record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cards import services
from cards.models import CommandoModeRecord, FallbackPolicy, FraudRule
from config.ops_views import fraud_rule_hits
from jit import fallback
from jit.models import JitDecision
from jit.outbox import drain_outbox
from ledger.models import AuditEvent
from tests.admin.conftest import authorize, login
from tests.cards.factories import FraudRuleFactory, SpendControlFactory, VelocityLimitFactory

pytestmark = pytest.mark.django_db


def test_given_controls_at_every_scope_when_card_page_opened_then_strictest_preview(
    support_user, card
):
    # given: the program allows 200.00 a transaction, the card 50.00; limits at two scopes
    program, cardholder = card.cardholder.program, card.cardholder
    SpendControlFactory(card=None, program=program, max_transaction_minor=20_000)
    SpendControlFactory(card=card, max_transaction_minor=5_000, blocked_countries=["PRK"])
    VelocityLimitFactory(card=None, cardholder=cardholder, window="month", max_amount_minor=90_000)
    VelocityLimitFactory(card=card, window="day", max_amount_minor=3_000)
    # when
    page = login(support_user).get(f"/admin/cards/card/{card.pk}/change/").content.decode()
    # then
    assert "effective controls (preview)" in page.lower()
    for shown in ("50.00 USD", "PRK", "900.00 USD", "30.00 USD"):
        assert shown in page


def test_given_cardholder_controls_when_cardholder_page_opened_then_preview_without_card_rows(
    ops_user, card
):
    cardholder = card.cardholder
    SpendControlFactory(card=None, cardholder=cardholder, max_transaction_minor=7_500)
    SpendControlFactory(card=card, max_transaction_minor=1_000)  # the card's own: not here
    page = login(ops_user).get(f"/admin/cards/cardholder/{cardholder.pk}/change/").content
    assert "75.00 USD" in page.decode()
    assert "10.00 USD" not in page.decode()


def decision(token: str, rule_hits: str, *, hours_ago: float = 0) -> JitDecision:
    """A recorded decision as the ledger writer stores it (only what the count reads varies)."""
    at = timezone.now() - timedelta(hours=hours_ago)
    return JitDecision.objects.create(
        jit_funding_token=token, method="pgfs.authorization", op="auth", user_token="u",
        card_token="c", amount_minor=100, currency_code="USD", outcome="approved",
        reason_code="APPROVED", rule_hits=rule_hits, received_at=at, decided_at=at,
        latency_us=900,
    )  # fmt: skip


def test_given_rules_1_and_11_when_counting_hits_then_each_rule_counts_its_own(
    django_assert_num_queries,
):
    # given
    decision("d1", "1:shadow:decline")
    decision("d2", "11:shadow:decline,1:on:flag")
    decision("d3", "11:on:decline")
    decision("d4", "1:shadow:decline", hours_ago=25)  # outside the window
    decision("d5", "")
    # when
    with django_assert_num_queries(1):
        hits = fraud_rule_hits([1, 11, 5], since=timezone.now() - timedelta(hours=24))
    # then: (hits, would-decline hits)
    assert hits == {1: (2, 1), 11: (2, 2), 5: (0, 0)}


def test_given_shadow_rule_hit_at_the_gateway_when_rules_listed_then_it_would_have_declined(
    client, marqeta_auth, ops_user, card_in_cache, django_capture_on_commit_callbacks
):
    # given: a shadow rule on amounts over 10.00, and a flag rule that never hits
    program = card_in_cache.cardholder.program
    with django_capture_on_commit_callbacks(execute=True):
        services.set_fraud_rule(
            program=program, name="big", kind="amount_over", params={"amount_minor": 1_000},
            actor=None, reason="test",
        )  # fmt: skip
        FraudRuleFactory(program=program, name="cvv", action="flag")
    assert authorize(client, marqeta_auth, card_in_cache, "fr-1", "25.00") == 200  # shadow
    assert authorize(client, marqeta_auth, card_in_cache, "fr-2", "30.00") == 200
    assert authorize(client, marqeta_auth, card_in_cache, "fr-3", "5.00") == 200
    drain_outbox()
    # when
    response = login(ops_user).get("/admin/cards/fraudrule/")
    # then
    page = response.content.decode()
    assert "2 hit(s), 2 would decline" in page
    assert "0 hit(s), flag only" in page


def test_given_open_breaker_when_fallback_policy_page_opened_then_state_of_this_process(
    ops_user, card
):
    # given
    policy = FallbackPolicy.objects.create(program=card.cardholder.program)
    for _ in range(fallback.breaker().threshold):
        fallback.breaker().record_failure()
    # when
    client = login(ops_user)
    change_page = client.get(f"/admin/cards/fallbackpolicy/{policy.pk}/change/").content.decode()
    list_page = client.get("/admin/cards/fallbackpolicy/").content.decode()
    # then
    for page in (change_page, list_page):
        assert '<strong id="breaker-state">open</strong>' in page
        assert "each gunicorn worker keeps its own circuit breaker" in page.lower()


def test_given_ops_when_editing_commando_mode_record_then_saved_and_audited(ops_user, card):
    # given
    record = CommandoModeRecord.objects.create(program=card.cardholder.program)
    # when
    response = login(ops_user).post(
        f"/admin/cards/commandomoderecord/{record.pk}/change/",
        {
            "program_gateway_funding_source_token": "pgfs_1",
            "auth_controls": "[]",
            "velocity_controls": '[{"amount_limit": 100}]',
            "real_time_standin_enabled": "on",
            "include_connection_errors": "on",
            "notes": "agreed with Marqeta",
            "reason": "Commando Mode set up",
        },
    )
    # then
    assert response.status_code == 302, response.content
    record.refresh_from_db()
    assert record.real_time_standin_enabled
    assert record.velocity_controls == [{"amount_limit": 100}]
    event = AuditEvent.objects.get(action="set_commando_mode_record")
    assert (event.actor, event.reason) == (ops_user, "Commando Mode set up")


def test_given_ops_when_turning_a_rule_on_from_the_list_then_mode_changes_and_audited(
    ops_user, card
):
    rule = FraudRuleFactory(program=card.cardholder.program)
    login(ops_user).post(
        "/admin/cards/fraudrule/", {"action": "turn_on", "_selected_action": [rule.pk]}
    )
    rule.refresh_from_db()
    assert rule.mode == FraudRule.Mode.ON
    assert AuditEvent.objects.filter(action="set_fraud_rule_mode", actor=ops_user).exists()
