"""The admin: events read-only; the exception queue worked through actions that call services."""

from __future__ import annotations

import pytest
from django.test import Client

from ledger.models import HoldRelease
from reconciliation import services
from reconciliation.models import ReconciliationException, WebhookEvent
from tests.ledger.helpers import balances
from tests.reconciliation.conftest import receive, transaction

pytestmark = pytest.mark.django_db
QUEUE = "/admin/reconciliation/reconciliationexception/"
EVENTS = "/admin/reconciliation/webhookevent/"


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def standin(week_wallet) -> ReconciliationException:
    receive(transaction("webhook_authorization_standin"))
    return ReconciliationException.objects.get(kind="standin_approval")


@pytest.fixture
def drift(db) -> ReconciliationException:
    return services.open_exception(kind="cache_drift", dedupe_key="drift:1", user_token="u1")


def act(user, action: str, *exceptions, reason: str = ""):
    return login(user).post(
        QUEUE,
        {
            "action": action,
            "_selected_action": [exception.pk for exception in exceptions],
            "reason": reason,
        },
        follow=True,
    )


@pytest.mark.parametrize(
    "path",
    [
        QUEUE,
        f"{QUEUE}?kind__exact=standin_approval&state__exact=open",
        f"{QUEUE}?age=day",
        f"{QUEUE}?q=card_91b2",
        EVENTS,
        f"{EVENTS}?status__exact=applied&category=transactions",
        f"{EVENTS}?q=txn-s-auth",
    ],
)
def test_given_ops_and_support_when_opening_queue_pages_then_200(
    standin, ops_user, support_user, path
):
    for user in (ops_user, support_user):
        response = login(user).get(path)
        assert response.status_code == 200, (user.username, path)


def test_given_search_by_card_when_listing_then_only_that_cards_exceptions(
    standin, drift, ops_user
):
    response = login(ops_user).get(f"{QUEUE}?q=card_91b2")
    assert list(response.context["cl"].result_list) == [standin]


def test_given_rows_when_opening_detail_pages_then_read_only_200(standin, ops_user, support_user):
    event = WebhookEvent.objects.get()
    for user in (ops_user, support_user):
        client = login(user)
        assert client.get(f"{QUEUE}{standin.pk}/change/").status_code == 200
        assert client.get(f"{EVENTS}{event.pk}/change/").status_code == 200
        assert client.get(f"{EVENTS}add/").status_code == 403
        assert client.get(f"{QUEUE}add/").status_code == 403


def test_given_ops_when_posting_the_exception_change_form_then_nothing_changes(standin, ops_user):
    response = login(ops_user).post(f"{QUEUE}{standin.pk}/change/", {"notes": "edited"})
    assert response.status_code == 403
    standin.refresh_from_db()
    assert standin.notes == ""


def test_given_ops_when_assigning_to_self_and_starting_then_state_and_assignee_set(drift, ops_user):
    # when
    act(ops_user, "assign_to_me", drift)
    act(ops_user, "mark_in_progress", drift)
    # then
    drift.refresh_from_db()
    assert (drift.assignee, drift.state) == (ops_user, "in_progress")


def test_given_no_reason_when_resolving_in_admin_then_error_message_and_unchanged(drift, ops_user):
    # when
    response = act(ops_user, "resolve", drift)
    # then
    assert response.status_code == 200
    assert "Type how they were resolved" in response.content.decode()
    drift.refresh_from_db()
    assert drift.state == "open"


def test_given_reason_when_resolving_in_admin_then_resolved(drift, ops_user):
    act(ops_user, "resolve", drift, reason="cache rebuilt")
    drift.refresh_from_db()
    assert (drift.state, drift.resolution, drift.resolved_by) == (
        "resolved",
        "cache rebuilt",
        ops_user,
    )


def test_given_ops_when_releasing_linked_holds_then_released_and_errors_shown_not_500(
    standin, drift, week_wallet, ops_user
):
    # when: one with a hold, one without
    response = act(ops_user, "release_linked_hold", standin, drift, reason="never captured")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert f"#{drift.pk}: exception #{drift.pk} links no hold" in page
    assert "1 exception(s) had their hold released" in page
    assert balances(week_wallet) == (25_000, 0)
    assert HoldRelease.objects.get().reason == "ops"


def test_given_note_when_added_in_admin_then_appended(drift, ops_user):
    act(ops_user, "note", drift, reason="looked at the cache")
    drift.refresh_from_db()
    assert drift.notes.endswith("looked at the cache")


def test_given_support_when_running_actions_then_nothing_changes(
    standin, week_wallet, support_user
):
    # when
    for action in ("assign_to_me", "resolve", "release_linked_hold"):
        response = act(support_user, action, standin, reason="trying")
        assert response.status_code in (200, 403)
    # then
    standin.refresh_from_db()
    assert (standin.state, standin.assignee) == ("open", None)
    assert balances(week_wallet) == (21_000, 4_000)
