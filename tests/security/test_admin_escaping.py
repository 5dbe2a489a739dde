"""Script and SQL injected through every way text reaches the admin (the JIT gateway and the
ledger writer, a Marqeta webhook and its Celery task, the internal API) is stored as text
and shown escaped: the raw `<script>` never appears in a page, and the tables are intact.
"""

from __future__ import annotations

import html
import json

import pytest
from django.test import Client

from jit.models import JitDecision
from jit.outbox import drain_outbox
from ledger.models import LedgerEntry
from reconciliation.models import WebhookEvent
from reconciliation.services import apply_webhook_event
from tests.jit.conftest import JSON, jit_body
from tests.reconciliation.conftest import envelope, transaction
from tests.security.conftest import DEMO_USER, jit_basic, webhook_basic

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
TAG = '"><img src=x onerror=alert(2)>'
SQL = "'); DROP TABLE ledger_ledgerentry; --"


@pytest.fixture
def injected(client, demo_card, superuser_token):
    """The payloads, each through a door a stranger (Marqeta's traffic) or a client holds."""
    decline = jit_body(demo_card, token=SCRIPT, amount="900.00")  # a 25-character token
    approval = json.loads(jit_body(demo_card, token="jit-xss", amount="5.00"))
    approval["card_acceptor"]["name"] = SCRIPT + SQL[:60]
    for body in (decline, json.dumps(approval)):
        client.post("/jit/marqeta/", body, content_type=JSON, HTTP_AUTHORIZATION=jit_basic())
    drain_outbox()
    force_post = transaction("webhook_force_post", token=SQL[:36], card_acceptor={"name": TAG})
    client.post(
        "/webhooks/marqeta/", envelope(force_post), content_type=JSON,
        HTTP_AUTHORIZATION=webhook_basic(),
    )  # fmt: skip
    apply_webhook_event(event=WebhookEvent.objects.get(token=SQL[:36]))
    client.post(
        "/api/v1/cardholders/", {"first_name": SCRIPT, "last_name": SQL},
        content_type=JSON, HTTP_AUTHORIZATION=f"Token {superuser_token}",
    )  # fmt: skip
    return demo_card


def pages(card) -> dict[str, list[str]]:
    """Admin page -> the payloads it must show (escaped)."""
    decision = JitDecision.objects.get(jit_funding_token="jit-xss")
    event = WebhookEvent.objects.get(token=SQL[:36])
    return {
        "/admin/jit/jitdecision/": [SCRIPT],
        f"/admin/jit/jitdecision/{decision.pk}/change/": [SCRIPT],
        f"/admin/cards/card/{card.pk}/history/": [SCRIPT, TAG],
        "/admin/reconciliation/webhookevent/": [SQL[:36]],
        f"/admin/reconciliation/webhookevent/{event.pk}/change/": [TAG],
        "/admin/cards/cardholder/": [SCRIPT],
        "/admin/ledger/ledgertransaction/": [],
        "/admin/reconciliation/reconciliationexception/": [],
        "/admin/dashboard/": [],
        f"/admin/jit/jitdecision/?q={SCRIPT}": [SCRIPT],
        f"/admin/cards/card/?q={SQL}": [SQL],
    }


def test_given_injected_text_when_the_admin_shows_it_then_escaped_and_tables_intact(
    superuser, injected
):
    # given
    admin = Client()
    admin.force_login(superuser)
    # when / then
    for url, shown in pages(injected).items():
        response = admin.get(url)
        page = response.content.decode()
        assert response.status_code == 200, url
        for payload in (SCRIPT, TAG):
            assert payload not in page, (url, payload)
        for payload in shown:
            assert html.escape(payload) in page, (url, payload)
    assert LedgerEntry.objects.exists()  # the "DROP TABLE" was only ever a string
    assert JitDecision.objects.filter(jit_funding_token=SCRIPT, outcome="declined").exists()
    assert DEMO_USER in {decision.user_token for decision in JitDecision.objects.all()}
