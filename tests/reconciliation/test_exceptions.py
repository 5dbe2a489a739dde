"""The exception queue: opened once per break, worked by people, every change audited."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from ledger.errors import HoldNotOpen, ReasonRequired
from ledger.models import AuditEvent, HoldRelease, LedgerTransaction
from ledger.services import release_hold
from reconciliation import services
from reconciliation.errors import (
    ExceptionAlreadyResolved,
    ExceptionHasNoHold,
    UnknownExceptionKind,
)
from reconciliation.models import ReconciliationException
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.reconciliation.conftest import committed, receive
from tests.reconciliation.conftest import transaction as marqeta_txn

pytestmark = pytest.mark.django_db


def audit_actions(exception: ReconciliationException) -> list[str]:
    rows = AuditEvent.objects.filter(
        target_type="reconciliation.reconciliationexception", target_id=str(exception.pk)
    )
    return list(rows.order_by("pk").values_list("action", flat=True))


@pytest.fixture
def drift() -> ReconciliationException:
    return services.open_exception(
        kind="cache_drift", dedupe_key="cache_drift:user_7f3a:1", user_token="user_7f3a"
    )


@pytest.fixture
def standin(week_wallet) -> ReconciliationException:
    """A stand-in approval Marqeta made without us: 40.00 held, flagged."""
    receive(marqeta_txn("webhook_authorization_standin"))
    return ReconciliationException.objects.get(kind="standin_approval")


def test_given_same_break_reported_twice_when_opening_then_one_row_and_one_audit_event(db):
    # when
    first = services.open_exception(
        kind="stale_hold", dedupe_key="stale_hold:jit:x", amount_minor=500, currency_code="USD"
    )
    second = services.open_exception(kind="stale_hold", dedupe_key="stale_hold:jit:x")
    # then
    assert first == second
    assert ReconciliationException.objects.count() == 1
    assert (second.state, second.amount_minor) == ("open", 500)
    assert audit_actions(first) == ["open_exception"]


def test_given_unknown_kind_when_opening_then_refused_and_nothing_opened(db):
    with pytest.raises(UnknownExceptionKind):
        services.open_exception(kind="something_else", dedupe_key="x")
    assert not ReconciliationException.objects.exists()


def test_given_open_exception_when_assigned_started_and_noted_then_each_audited(
    drift, ops_user, second_ops_user
):
    # when
    services.assign_exception(exception=drift, assignee=second_ops_user, actor=ops_user)
    services.start_exception(exception=drift, actor=ops_user)
    services.add_note(exception=drift, actor=ops_user, note="cache rebuilt for user_7f3a")
    # then
    drift.refresh_from_db()
    assert (drift.state, drift.assignee) == ("in_progress", second_ops_user)
    assert drift.notes.endswith("maker] cache rebuilt for user_7f3a")
    assert audit_actions(drift) == [
        "open_exception",
        "assign_exception",
        "start_exception",
        "add_exception_note",
    ]
    assign = AuditEvent.objects.get(action="assign_exception")
    assert (assign.before["assignee"], assign.after["assignee"]) == (None, second_ops_user.pk)
    assert assign.actor == ops_user


def test_given_unassigned_exception_when_started_then_the_starter_is_assignee(drift, ops_user):
    services.start_exception(exception=drift, actor=ops_user)
    drift.refresh_from_db()
    assert drift.assignee == ops_user


def test_given_blank_resolution_when_resolving_then_refused_and_nothing_changes(drift, ops_user):
    # when
    with pytest.raises(ReasonRequired):
        services.resolve_exception(exception=drift, actor=ops_user, resolution="  ")
    # then
    drift.refresh_from_db()
    assert (drift.state, drift.resolved_at) == ("open", None)
    assert audit_actions(drift) == ["open_exception"]


def test_given_blank_note_when_noting_then_refused(drift, ops_user):
    with pytest.raises(ReasonRequired):
        services.add_note(exception=drift, actor=ops_user, note="")
    drift.refresh_from_db()
    assert drift.notes == ""


def test_given_reason_when_resolving_then_resolved_once_and_audited(drift, ops_user):
    # when
    services.resolve_exception(exception=drift, actor=ops_user, resolution="rebuilt the cache")
    # then
    drift.refresh_from_db()
    assert (drift.state, drift.resolved_by, drift.resolution) == (
        "resolved",
        ops_user,
        "rebuilt the cache",
    )
    assert drift.resolved_at is not None
    event = AuditEvent.objects.get(action="resolve_exception")
    assert (event.reason, event.before["state"], event.after["state"]) == (
        "rebuilt the cache",
        "open",
        "resolved",
    )
    # and a resolved exception is closed
    with pytest.raises(ExceptionAlreadyResolved):
        services.resolve_exception(exception=drift, actor=ops_user, resolution="again")
    with pytest.raises(ExceptionAlreadyResolved):
        services.assign_exception(exception=drift, assignee=ops_user, actor=ops_user)
    assert audit_actions(drift) == ["open_exception", "resolve_exception"]


def test_given_standin_exception_when_ops_release_its_hold_then_released_once_and_audited(
    standin, week_wallet, ops_user
):
    # given
    assert balances(week_wallet) == (21_000, 4_000)
    # when
    with committed():
        release = services.release_hold_for_exception(
            exception=standin, actor=ops_user, reason="merchant confirmed it never captured"
        )
        again = services.release_hold_for_exception(
            exception=standin, actor=ops_user, reason="clicked twice"
        )
    # then
    assert again == release
    assert (release.reason, release.release_key, release.amount_minor) == (
        "ops",
        f"exception:{standin.pk}",
        4_000,
    )
    assert release.posted_by.actor == "ops:maker"
    assert balances(week_wallet) == (25_000, 0)
    standin.refresh_from_db()
    assert "released 40.00 USD of jit:jit-s-auth" in standin.notes
    assert standin.details["release_id"] == release.pk
    assert audit_actions(standin) == ["open_exception", "release_hold_for_exception"]
    assert_ledger_consistent()


def test_given_exception_without_hold_when_releasing_then_refused_and_nothing_moves(
    drift, ops_user
):
    postings = LedgerTransaction.objects.count()
    with pytest.raises(ExceptionHasNoHold):
        services.release_hold_for_exception(exception=drift, actor=ops_user, reason="why not")
    assert LedgerTransaction.objects.count() == postings
    assert audit_actions(drift) == ["open_exception"]


def test_given_blank_reason_when_releasing_then_refused_and_nothing_moves(
    standin, week_wallet, ops_user
):
    with pytest.raises(ReasonRequired):
        services.release_hold_for_exception(exception=standin, actor=ops_user, reason=" ")
    assert balances(week_wallet) == (21_000, 4_000)
    assert not HoldRelease.objects.exists()


def test_given_hold_already_released_when_releasing_then_refused_and_nothing_changes(
    standin, week_wallet, ops_user
):
    # given
    release_hold(hold=standin.hold, release_key="elsewhere")
    # when
    with pytest.raises(HoldNotOpen):
        services.release_hold_for_exception(exception=standin, actor=ops_user, reason="stale")
    # then
    standin.refresh_from_db()
    assert (standin.notes, standin.details.get("release_id")) == ("", None)
    assert HoldRelease.objects.count() == 1
    assert audit_actions(standin) == ["open_exception"]


@pytest.mark.parametrize(
    "change",
    [
        {"state": "resolved", "resolution": "done"},  # resolved without resolved_at
        {"resolved_at": "2026-05-09T00:00:00Z"},  # resolved_at on an open exception
        {"kind": "not_a_kind"},
    ],
)
def test_given_direct_sql_update_breaking_a_rule_when_saved_then_database_refuses(drift, change):
    with pytest.raises(IntegrityError), transaction.atomic():
        ReconciliationException.objects.filter(pk=drift.pk).update(**change)


def test_given_resolved_without_resolution_when_written_then_database_refuses(drift):
    with pytest.raises(IntegrityError), transaction.atomic():
        ReconciliationException.objects.filter(pk=drift.pk).update(
            state="resolved", resolved_at="2026-05-09T00:00:00Z"
        )
