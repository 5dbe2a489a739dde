"""Support reads everything and changes nothing: every add, change and delete URL of every
registered admin model answers 403, and every action posted changes no row."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework.authtoken.models import Token

from cards import services
from cards.models import CommandoModeRecord, FallbackPolicy
from cards.selectors import funding_account_for
from jit.outbox import drain_outbox
from ledger.models import Hold
from ledger.services import clear_hold, propose_adjustment, release_hold
from reconciliation.services import open_exception, record_webhook_envelope
from tests.admin.conftest import authorize, login
from tests.cards.factories import FraudRuleFactory, SpendControlFactory
from tests.jit.conftest import load_fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_of_everything(client, marqeta_auth, ops_user, card_with_decline):
    """A row in (nearly) every registered model, made the way production makes them."""
    card = card_with_decline
    program = card.cardholder.program
    assert authorize(client, marqeta_auth, card, "ro-2", "3.00") == 200
    drain_outbox()
    first, second = Hold.objects.order_by("pk")[:2]
    clear_hold(hold=first, amount_minor=first.amount_minor, clearing_key="ro-clear")
    release_hold(hold=second, release_key="ro-release")
    services.set_mcc_group(program=program, name="lodging", mccs=["7011"])
    SpendControlFactory(card=card, max_transaction_minor=5_000)
    FraudRuleFactory(program=program)
    FallbackPolicy.objects.create(program=program)
    CommandoModeRecord.objects.create(program=program)
    wallet = funding_account_for(cardholder=card.cardholder).wallet
    propose_adjustment(wallet=wallet, amount_minor=500, reason="goodwill", proposer=ops_user)
    record_webhook_envelope(body=json.dumps(load_fixture("webhook_ping")).encode())
    open_exception(kind="cache_drift", dedupe_key="ro:drift", hold=first)
    Token.objects.create(user=ops_user)
    return card


def everything() -> dict[str, list[dict]]:
    """Every row of every registered model (the test database is small)."""
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for model in admin.site._registry
    }


def urls_of(model) -> tuple[str, str, str, str]:
    row = model._default_manager.order_by("pk").first()
    pk = row.pk if row is not None else 0
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    return (
        reverse(f"{name}_add"),
        reverse(f"{name}_change", args=[pk]),
        reverse(f"{name}_delete", args=[pk]),
        reverse(f"{name}_changelist"),
    )


def test_given_support_when_writing_through_every_admin_url_then_403_and_nothing_changes(
    support_user, one_of_everything
):
    # given
    client = login(support_user)
    before = everything()
    empty = [label for label, rows in before.items() if not rows]
    refused = []
    # when
    for model, model_admin in admin.site._registry.items():
        add, change, delete, changelist = urls_of(model)
        for method, url in [
            ("get", add),
            ("post", add),
            ("post", change),
            ("get", delete),
            ("post", delete),
        ]:
            status = getattr(client, method)(url, {"reason": "support tried"}).status_code
            assert status == 403, (model._meta.label, method, url, status)
            refused.append(url)
        row = model._default_manager.order_by("pk").first()
        for _, name, _ in model_admin._get_base_actions():
            response = client.post(
                changelist,
                {
                    "action": name,
                    "_selected_action": [row.pk if row else 0],
                    "reason": "support tried",
                    "index": 0,
                },
            )
            assert response.status_code in (200, 302, 403), (model._meta.label, name)
            refused.append(f"{changelist} action {name}")
    # then
    assert everything() == before
    assert len(empty) <= 3, f"no row to try on: {empty}"  # e.g. negative balances
    print(
        f"support refused {len(refused)} writes over {len(admin.site._registry)} models "
        f"(no row of {empty})"
    )


def test_given_support_when_posting_to_the_history_and_dashboard_then_nothing_is_written(
    support_user, card_with_decline
):
    client = login(support_user)
    history = f"/admin/cards/card/{card_with_decline.pk}/history/"
    assert client.post(history, {}).status_code == 405
    assert client.post("/admin/dashboard/", {}).status_code == 405


def test_given_the_support_group_when_its_permissions_are_read_then_view_only():
    codenames = Group.objects.get(name="Support").permissions.values_list("codename", flat=True)
    assert codenames
    assert all(codename.startswith("view_") for codename in codenames)
