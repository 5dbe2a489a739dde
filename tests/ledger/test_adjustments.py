"""Maker-checker: one person proposes, another approves, and money moves exactly once."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from ledger.errors import AdjustmentNotPending, ReasonRequired, SelfApprovalRefused
from ledger.models import AuditEvent, Kind, LedgerTransaction, ManualAdjustment
from ledger.services import approve_adjustment, propose_adjustment, reject_adjustment
from tests.conftest import staff_user
from tests.ledger.helpers import assert_ledger_consistent, balances

pytestmark = pytest.mark.django_db


@pytest.fixture
def adjustment(funded_wallet, ops_user) -> ManualAdjustment:
    return propose_adjustment(
        wallet=funded_wallet, amount_minor=2_500, reason="goodwill credit", proposer=ops_user
    )


def test_given_proposal_when_made_then_pending_audited_and_nothing_posted(adjustment, ops_user):
    assert adjustment.status == ManualAdjustment.Status.PENDING
    assert balances(adjustment.wallet) == (10_000, 0)
    event = AuditEvent.objects.get(action="propose_adjustment")
    assert event.actor == ops_user
    assert event.reason == "goodwill credit"
    assert event.before is None
    assert event.after["amount_minor"] == 2_500


def test_given_maker_when_self_approving_then_refused_and_nothing_posted(adjustment):
    before = balances(adjustment.wallet)
    # when
    with pytest.raises(SelfApprovalRefused):
        approve_adjustment(adjustment=adjustment, approver=adjustment.proposed_by)
    # then
    assert balances(adjustment.wallet) == before
    assert not LedgerTransaction.objects.filter(kind=Kind.ADJUSTMENT).exists()
    adjustment.refresh_from_db()
    assert adjustment.status == ManualAdjustment.Status.PENDING


def test_given_checker_when_approving_then_money_moves_and_audit_has_before_after(
    adjustment, second_ops_user
):
    # when
    approved = approve_adjustment(adjustment=adjustment, approver=second_ops_user)
    # then
    assert approved.status == ManualAdjustment.Status.APPROVED
    assert balances(adjustment.wallet) == (12_500, 0)
    event = AuditEvent.objects.get(action="approve_adjustment")
    assert event.before["status"] == "pending"
    assert event.after["status"] == "approved"
    assert event.actor == second_ops_user
    assert_ledger_consistent()


def test_given_approved_when_approved_again_then_refused_and_posted_once(
    adjustment, second_ops_user
):
    approve_adjustment(adjustment=adjustment, approver=second_ops_user)
    with pytest.raises(AdjustmentNotPending):
        approve_adjustment(adjustment=adjustment, approver=second_ops_user)
    assert LedgerTransaction.objects.filter(kind=Kind.ADJUSTMENT).count() == 1
    assert balances(adjustment.wallet) == (12_500, 0)


@pytest.mark.django_db(transaction=True)
def test_given_two_checkers_when_approving_at_once_then_posted_once(
    funded_wallet, ops_user, second_ops_user
):
    third_ops_user = staff_user("checker2", "Ops")
    adjustment = propose_adjustment(
        wallet=funded_wallet, amount_minor=-1_000, reason="fee", proposer=ops_user
    )
    outcomes: list[str] = []

    def approve(user) -> None:
        try:
            approve_adjustment(adjustment=adjustment, approver=user)
            outcomes.append("approved")
        except AdjustmentNotPending:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=approve, args=(u,)) for u in (second_ops_user, third_ops_user)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["approved", "refused"]
    assert balances(funded_wallet) == (9_000, 0)


def test_given_debit_adjustment_when_approved_then_available_drops(
    funded_wallet, ops_user, second_ops_user
):
    proposal = propose_adjustment(
        wallet=funded_wallet, amount_minor=-1_000, reason="chargeback fee", proposer=ops_user
    )
    approve_adjustment(adjustment=proposal, approver=second_ops_user)
    assert balances(funded_wallet) == (9_000, 0)
    funded_wallet.book.adjustments.refresh_from_db()
    assert funded_wallet.book.adjustments.balance_minor == -1_000  # income for the program


def test_given_proposal_when_rejected_then_nothing_posted_and_audited(adjustment, ops_user):
    reject_adjustment(adjustment=adjustment, decider=ops_user, reason="duplicate request")
    adjustment.refresh_from_db()
    assert adjustment.status == ManualAdjustment.Status.REJECTED
    assert balances(adjustment.wallet) == (10_000, 0)
    assert AuditEvent.objects.filter(action="reject_adjustment").count() == 1


def test_given_no_reason_when_proposing_then_refused(funded_wallet, ops_user):
    with pytest.raises(ReasonRequired):
        propose_adjustment(wallet=funded_wallet, amount_minor=1, reason="  ", proposer=ops_user)
    assert not ManualAdjustment.objects.exists()


def test_given_raw_update_when_maker_set_as_approver_then_database_refuses(adjustment):
    with pytest.raises(IntegrityError), transaction.atomic():
        ManualAdjustment.objects.filter(pk=adjustment.pk).update(
            status="approved",
            decided_by=adjustment.proposed_by,
            transaction=LedgerTransaction.objects.first(),  # only the two-person rule is broken
        )


def test_given_model_with_many_to_many_when_snapshotted_then_related_rows_by_pk(db):
    from django.contrib.auth.models import Group

    from ledger.audit import snapshot

    group = Group.objects.get(name="Ops")
    permissions = snapshot(group)["permissions"]
    assert permissions
    assert set(permissions) == set(group.permissions.values_list("pk", flat=True))
