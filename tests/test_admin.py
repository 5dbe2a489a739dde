"""The admin: groups and permissions, read-only ledger, maker-checker through actions."""

from __future__ import annotations

import pytest
from django.test import Client

from ledger.models import LedgerTransaction, ManualAdjustment
from ledger.services import propose_adjustment
from tests.ledger.helpers import balances, hold

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/cards/program/",
        "/admin/cards/cardholder/",
        "/admin/cards/card/",
        "/admin/ledger/ledgertransaction/",
        "/admin/ledger/ledgerentry/",
        "/admin/ledger/hold/",
        "/admin/ledger/manualadjustment/",
        "/admin/ledger/auditevent/",
        "/admin/ledger/wallet/",
    ],
)
def test_given_ops_and_support_when_opening_pages_then_200(
    ops_user, support_user, funded_wallet, path
):
    hold(funded_wallet, 500, "jit:admin-page")
    for user in (ops_user, support_user):
        assert login(user).get(path).status_code == 200, (user.username, path)


def test_given_support_when_adding_a_card_then_403(support_user, funded_card):
    client = login(support_user)
    assert client.get("/admin/cards/card/add/").status_code == 403
    response = client.post(
        f"/admin/cards/card/{funded_card.pk}/change/", {"expires_on": "2031-01-01"}
    )
    assert response.status_code == 403


def test_given_anyone_when_opening_a_ledger_entry_add_page_then_403(ops_user):
    assert login(ops_user).get("/admin/ledger/ledgerentry/add/").status_code == 403


def test_given_maker_when_proposing_in_admin_then_pending_and_nothing_posted(
    ops_user, funded_wallet
):
    response = login(ops_user).post(
        "/admin/ledger/manualadjustment/add/",
        {"wallet": funded_wallet.pk, "amount": "5.00", "reason": "goodwill"},
    )
    assert response.status_code == 302, response.content
    adjustment = ManualAdjustment.objects.get()
    assert (adjustment.amount_minor, adjustment.proposed_by) == (500, ops_user)
    assert balances(funded_wallet) == (10_000, 0)


def test_given_over_precise_amount_when_proposing_in_admin_then_form_error(ops_user, funded_wallet):
    response = login(ops_user).post(
        "/admin/ledger/manualadjustment/add/",
        {"wallet": funded_wallet.pk, "amount": "5.001", "reason": "goodwill"},
    )
    assert response.status_code == 200
    assert "more decimals" in response.content.decode()
    assert not ManualAdjustment.objects.exists()


def approve_in_admin(user, adjustment) -> Client:
    client = login(user)
    client.post(
        "/admin/ledger/manualadjustment/",
        {"action": "approve", "_selected_action": [adjustment.pk]},
        follow=True,
    )
    return client


def test_given_maker_when_approving_own_proposal_in_admin_then_refused(ops_user, funded_wallet):
    adjustment = propose_adjustment(
        wallet=funded_wallet, amount_minor=500, reason="goodwill", proposer=ops_user
    )
    approve_in_admin(ops_user, adjustment)
    adjustment.refresh_from_db()
    assert adjustment.status == ManualAdjustment.Status.PENDING
    assert balances(funded_wallet) == (10_000, 0)


def test_given_checker_when_approving_in_admin_then_posted_once(
    ops_user, second_ops_user, funded_wallet
):
    adjustment = propose_adjustment(
        wallet=funded_wallet, amount_minor=500, reason="goodwill", proposer=ops_user
    )
    approve_in_admin(second_ops_user, adjustment)
    approve_in_admin(second_ops_user, adjustment)
    adjustment.refresh_from_db()
    assert adjustment.status == ManualAdjustment.Status.APPROVED
    assert LedgerTransaction.objects.filter(kind="adjustment").count() == 1
    assert balances(funded_wallet) == (10_500, 0)


def test_given_support_when_approving_in_admin_then_nothing_happens(
    ops_user, support_user, funded_wallet
):
    adjustment = propose_adjustment(
        wallet=funded_wallet, amount_minor=500, reason="goodwill", proposer=ops_user
    )
    response = login(support_user).post(
        "/admin/ledger/manualadjustment/",
        {"action": "approve", "_selected_action": [adjustment.pk]},
    )
    assert response.status_code in (200, 302, 403)
    adjustment.refresh_from_db()
    assert adjustment.status == ManualAdjustment.Status.PENDING


def test_given_ops_when_suspending_card_in_admin_then_state_changes_and_audited(
    ops_user, funded_card
):
    login(ops_user).post(
        "/admin/cards/card/", {"action": "suspend", "_selected_action": [funded_card.pk]}
    )
    funded_card.refresh_from_db()
    assert funded_card.state == "SUSPENDED"
    from ledger.models import AuditEvent

    event = AuditEvent.objects.get(action="set_card_state")
    assert event.before["state"] == "ACTIVE"
    assert event.after["state"] == "SUSPENDED"
