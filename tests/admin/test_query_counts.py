"""Big tables stay fast: each page runs a fixed number of queries, whatever the row count.

The numbers printed here (run with -s) are the ones in docs/admin.md.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jit.outbox import drain_outbox
from ledger.models import AuditEvent, Hold
from ledger.services import release_hold
from reconciliation.models import ReconciliationException
from reconciliation.services import assign_exception, open_exception
from tests.admin.conftest import authorize, login
from tests.cards.factories import CardFactory, CardholderFactory

pytestmark = pytest.mark.django_db


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


@pytest.fixture
def many_decisions(client, marqeta_auth, card_in_cache, patient_gateway):
    """300 approvals through the gateway, 60 of them reversed: 300 holds, 300 decisions."""
    for n in range(300):
        assert authorize(client, marqeta_auth, card_in_cache, f"many-{n}", "0.10") == 200
    drain_outbox()
    for hold in Hold.objects.order_by("pk")[:60]:
        release_hold(hold=hold, release_key=f"rev-{hold.pk}")
    return card_in_cache


def test_given_hundreds_of_cards_when_listed_and_searched_then_fixed_queries(
    ops_user, django_assert_max_num_queries
):
    # given: 150 cardholders with 2 cards each
    for _ in range(150):
        holder = CardholderFactory()
        CardFactory.create_batch(2, cardholder=holder)
    client = login(ops_user)
    client.get("/admin/")  # the session is loaded once before counting
    # when / then
    with django_assert_max_num_queries(10):
        listed = count_queries(client, "/admin/cards/card/")
    with django_assert_max_num_queries(10):
        searched = count_queries(client, "/admin/cards/card/?q=Ada")
    print(f"card list (300 cards, 100 a page): {listed} queries; name search: {searched}")


def test_given_hundreds_of_holds_and_decisions_when_listed_then_fixed_queries(
    ops_user, many_decisions, django_assert_max_num_queries
):
    client = login(ops_user)
    client.get("/admin/")
    with django_assert_max_num_queries(10):
        holds = count_queries(client, "/admin/ledger/hold/")
    with django_assert_max_num_queries(10):
        decisions = count_queries(client, "/admin/jit/jitdecision/")
    with django_assert_max_num_queries(10):
        declined = count_queries(
            client, "/admin/jit/jitdecision/?outcome__exact=declined&decided=day"
        )
    print(f"holds (300): {holds} queries; JIT decisions (300): {decisions}; filtered: {declined}")


def test_given_hundreds_of_exceptions_when_listed_then_fixed_queries(
    ops_user, second_ops_user, django_assert_max_num_queries
):
    # given: 300 open exceptions, half of them assigned
    for n in range(300):
        exception = open_exception(
            kind="cache_drift" if n % 2 else "stale_hold",
            dedupe_key=f"many:{n}",
            card_token=f"card_{n}",
            amount_minor=100 + n,
            currency_code="USD",
        )
        if n % 2:
            assign_exception(exception=exception, assignee=second_ops_user, actor=ops_user)
    assert ReconciliationException.objects.count() == 300
    client = login(ops_user)
    client.get("/admin/")
    # when / then
    with django_assert_max_num_queries(12):
        listed = count_queries(client, "/admin/reconciliation/reconciliationexception/")
    with django_assert_max_num_queries(12):
        filtered = count_queries(
            client, "/admin/reconciliation/reconciliationexception/?kind__exact=cache_drift"
        )
    with django_assert_max_num_queries(10):
        audit = count_queries(client, "/admin/ledger/auditevent/")
    events = AuditEvent.objects.count()
    print(
        f"exceptions (300): {listed} queries; filtered by type: {filtered}; "
        f"audit events ({events}): {audit}"
    )


def test_given_hundreds_of_history_rows_when_history_page_opened_then_fixed_queries(
    support_user, many_decisions, django_assert_max_num_queries
):
    client = login(support_user)
    client.get("/admin/")
    # when
    with django_assert_max_num_queries(20):
        queries = count_queries(client, f"/admin/cards/card/{many_decisions.pk}/history/")
    # then
    rows = client.get(f"/admin/cards/card/{many_decisions.pk}/history/").context["rows"]
    assert len(rows) == 361  # 300 authorizations, 60 releases, the deposit
    print(f"card history page ({len(rows)} rows): {queries} queries")
