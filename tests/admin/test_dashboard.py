"""The ops dashboard: the last hour of the gateway, for Ops and superusers only."""

from __future__ import annotations

import pytest

from config import dashboard
from jit import fallback
from jit.outbox import drain_outbox
from jit.standin import replay_standin_spool
from reconciliation.services import open_exception
from tests.admin.conftest import authorize, login

pytestmark = pytest.mark.django_db


@pytest.fixture
def an_hour(client, marqeta_auth, card_with_decline):
    """3 approvals, 2 declines over the daily limit (one before: card_with_decline), an open
    exception."""
    card = card_with_decline
    assert authorize(client, marqeta_auth, card, "dash-1", "1.00") == 200
    assert authorize(client, marqeta_auth, card, "dash-2", "2.00") == 200
    assert authorize(client, marqeta_auth, card, "dash-3", "50.00") == 402
    drain_outbox()
    open_exception(kind="cache_drift", dedupe_key="drift:dash", user_token="u")
    return card


def test_given_an_hour_of_decisions_when_ops_open_the_dashboard_then_the_numbers(
    ops_user, an_hour, django_assert_max_num_queries
):
    client = login(ops_user)
    # when
    with django_assert_max_num_queries(12) as captured:
        response = client.get("/admin/dashboard/")
    # then
    assert response.status_code == 200
    summary = response.context["summary"]
    assert (summary["total"], summary["approved"], summary["declined"]) == (5, 3, 2)
    assert summary["approval_rate"] == "60.0 %"
    assert summary["p99_ms"].endswith(" ms")
    [reason] = response.context["reasons"]
    assert (reason["reason_code"], reason["count"]) == ("VELOCITY_DAY_AMOUNT", 2)
    assert reason["words"] == "daily spend limit"
    assert response.context["outbox_lag"] == 0
    assert [(row["kind"], row["count"]) for row in response.context["exceptions"]] == [
        ("cache_drift", 1)
    ]
    page = response.content.decode()
    assert '<svg id="volume-chart"' in page
    assert '<svg id="reasons-chart"' in page
    assert "<script" not in page.split('id="content-main"')[1]  # server-drawn, no JS
    print(f"dashboard: {len(captured)} queries")


def test_given_stand_in_answers_when_dashboard_opened_then_counted_as_fallback(
    client, marqeta_auth, ops_user, card_in_cache
):
    # given: the breaker is open; one answer under decline-all, one under approve-up-to
    for _ in range(fallback.breaker().threshold):
        fallback.breaker().record_failure()
    assert authorize(client, marqeta_auth, card_in_cache, "fb-1", "3.00") == 402
    fallback.install_policy(
        fallback.StandInPolicy(
            mode="APPROVE_UP_TO", max_transaction_minor=5_000, max_daily_per_card_minor=5_000
        )
    )
    assert authorize(client, marqeta_auth, card_in_cache, "fb-2", "4.00") == 200
    fallback.breaker().record_success()
    replay_standin_spool()  # what the periodic task does once Redis answers again
    # when
    response = login(ops_user).get("/admin/dashboard/")
    # then
    summary = response.context["summary"]
    assert (summary["fallback_approved"], summary["fallback_declined"]) == (1, 1)
    assert response.context["breaker_state"] == "closed"


def test_given_support_when_opening_the_dashboard_then_403(support_user):
    assert login(support_user).get("/admin/dashboard/").status_code == 403


def test_given_superuser_when_opening_the_dashboard_then_200(admin_user):
    assert login(admin_user).get("/admin/dashboard/").status_code == 200


def test_given_ops_and_support_when_opening_admin_home_then_only_ops_see_the_dashboard_link(
    ops_user, support_user
):
    ops_page = login(ops_user).get("/admin/").content.decode()
    support_page = login(support_user).get("/admin/").content.decode()
    assert "/admin/dashboard/" in ops_page
    assert "/admin/dashboard/" not in support_page
    assert 'id="card-search"' in support_page  # support find cards from the home page


def test_given_no_decisions_when_dashboard_opened_then_dashes_not_errors(ops_user):
    response = login(ops_user).get("/admin/dashboard/")
    assert response.status_code == 200
    assert response.context["summary"]["approval_rate"] == "-"
    assert response.context["summary"]["p99_ms"] == "-"


def test_given_buckets_when_charted_then_columns_scale_to_the_tallest():
    chart = dashboard.horizontal_bars([{"label": "a", "count": 4}, {"label": "b", "count": 1}])
    lengths = [bar["length"] for bar in chart["bars"]]
    assert lengths[0] == 4 * lengths[1] or abs(lengths[0] - 4 * lengths[1]) <= 2
