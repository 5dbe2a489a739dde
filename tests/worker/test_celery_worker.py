"""A real Celery worker process applies Marqeta webhooks end to end (no eager mode)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.conf import settings

from jit.outbox import drain_outbox
from reconciliation.models import WebhookEvent
from tests.jit.conftest import JSON, basic
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.reconciliation.conftest import envelope, jit_request, transaction

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_until_applied(tokens: list[str], timeout: float = 60.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = dict(
            WebhookEvent.objects.filter(token__in=tokens).values_list("token", "status")
        )
        if len(statuses) == len(tokens) and set(statuses.values()) <= {"applied", "ignored"}:
            return statuses
        time.sleep(0.1)
    return dict(WebhookEvent.objects.filter(token__in=tokens).values_list("token", "status"))


def test_given_webhooks_when_posted_then_a_real_worker_applies_them_to_the_ledger(
    client, celery_worker, week_card, week_wallet
):
    # given: the gateway approved 150.00 (MARQETA.md §11, auth A) and the writer recorded it
    jit_auth = {"HTTP_AUTHORIZATION": basic(settings.MARQETA_JIT_USERNAME,
                                            settings.MARQETA_JIT_PASSWORD)}  # fmt: skip
    body = jit_request(txn="txn-a-auth", jit="jit-a-auth", amount="150.00")
    assert client.post("/jit/marqeta/", body, content_type=JSON, **jit_auth).status_code == 200
    drain_outbox()
    # when: Marqeta sends the clearing of 120.00 and its companion funding event
    clearing = transaction("webhook_clearing_1", amount=Decimal("120.00"), is_final_clearing=True)
    webhook_auth = {"HTTP_AUTHORIZATION": basic(settings.MARQETA_WEBHOOK_USERNAME,
                                                settings.MARQETA_WEBHOOK_PASSWORD)}  # fmt: skip
    response = client.post(
        "/webhooks/marqeta/", envelope(clearing), content_type=JSON, **webhook_auth
    )
    # then: answered at once, applied by the worker process
    assert response.status_code == 200
    statuses = wait_until_applied([clearing["token"]])
    assert statuses == {clearing["token"]: "applied"}
    assert balances(week_wallet) == (25_000 - 12_000, 0)  # charged 120, the rest released
    assert_ledger_consistent()
