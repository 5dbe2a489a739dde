"""The fake speaks Marqeta exactly: its payloads have the fields and value shapes of MARQETA.md's
examples (our fixtures), and our endpoints accept them and post what they mean."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
import simplejson
from django.conf import settings
from django.test import TestCase

from cards.models import Card
from cards.selectors import funding_account_for
from jit.outbox import drain_outbox
from jit.simulator import payloads
from jit.simulator.model import APPROVED, DECLINED, AuthMessage, Chain
from jit.simulator.payloads import GatewayOutcome, MarqetaOutcome
from jit.simulator.scenario import FULL_REVERSAL, MULTI, Shares, WebhookPlanner, seeded
from reconciliation import services
from reconciliation.models import WebhookEvent
from tests.jit.conftest import JSON, basic, load_fixture
from tests.ledger.helpers import assert_ledger_consistent, balances


def same_shape(ours, example, path="") -> list[str]:
    """Every field of Marqeta's example is in ours, with a value of the same kind."""
    problems = []
    if isinstance(example, dict):
        if not isinstance(ours, dict):
            return [f"{path}: not an object"]
        for key, value in example.items():
            if key not in ours:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += same_shape(ours[key], value, f"{path}.{key}")
        return problems
    kinds = {
        bool: "bool",
        int: "number",
        float: "number",
        Decimal: "number",
        str: "string",
        list: "list",
    }
    if kinds.get(type(ours)) != kinds.get(type(example)):
        problems.append(f"{path}: {type(ours).__name__}, example has {type(example).__name__}")
    return problems


@pytest.fixture
def jit_auth():
    return {
        "HTTP_AUTHORIZATION": basic(settings.MARQETA_JIT_USERNAME, settings.MARQETA_JIT_PASSWORD)
    }


@pytest.fixture
def webhook_auth():
    return {
        "HTTP_AUTHORIZATION": basic(
            settings.MARQETA_WEBHOOK_USERNAME, settings.MARQETA_WEBHOOK_PASSWORD
        )
    }


def ask(client, jit_auth, facts, message):
    request = payloads.jit_request(facts, message)
    raw = payloads.dumps(request)
    response = client.post("/jit/marqeta/", raw, content_type=JSON, **jit_auth)
    with TestCase.captureOnCommitCallbacks(execute=True):
        drain_outbox()
    return request, raw, response


def approved_chain(client, jit_auth, facts, tokens, amount_minor=15_000) -> Chain:
    message = tokens.message(type="authorization", method="pgfs.authorization",
                             amount_minor=amount_minor)  # fmt: skip
    request, _, response = ask(client, jit_auth, facts, message)
    assert response.status_code == 200, response.content
    body = simplejson.loads(response.content, use_decimal=True)
    auth = AuthMessage(
        message=message,
        ours=APPROVED,
        gateway=GatewayOutcome(duration_ms=48, timed_out=False, status=200, response=body),
        marqeta=MarqetaOutcome(approved=True),
        request=request,
        response=body,
    )
    chain = Chain(facts=facts, kind="purchase", messages=[auth])
    chain.hold(amount_minor)
    return chain


def planner(tokens) -> WebhookPlanner:
    return WebhookPlanner(
        seeded(7),
        tokens=tokens,
        shares=Shares(),
        authorizations=1,
        funding_source_token="pgfs_main",
    )


def deliver(client, webhook_auth, events) -> None:
    """POST the events as Marqeta would and apply them as the worker would."""
    body = payloads.envelope([event.body for event in events])
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post("/webhooks/marqeta/", body, content_type=JSON, **webhook_auth)
    assert response.status_code == 200, response.content
    for event in events:
        stored = WebhookEvent.objects.get(token=event.token)
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.apply_webhook_event(event=stored)


def test_given_a_purchase_when_built_then_the_jit_request_has_example_1s_fields_and_is_approved(
    client, jit_auth, car_rental_facts, tokens
):
    # given
    message = tokens.message(type="authorization", method="pgfs.authorization",
                             amount_minor=15_000)  # fmt: skip
    # when
    request, raw, response = ask(client, jit_auth, car_rental_facts, message)
    # then: every field of MARQETA.md Example 1, with the same kinds of values
    example = simplejson.loads(json.dumps(load_fixture("jit_authorization")), use_decimal=True)
    assert same_shape(request, example) == []
    funding = request["gpa_order"]["jit_funding"]
    assert funding["token"] == message.jit_token
    assert funding["method"] == "pgfs.authorization"
    assert funding["user_token"] == funding["acting_user_token"] == "user_7f3a"
    assert request["state"] == "PENDING"
    assert request["card_token"] == "card_91b2"
    assert request["card_acceptor"]["country_code"] == "USA"  # alpha-3 [seen]
    assert request["gpa_order"]["funding"]["source"]["type"] == "programgateway"
    assert request["gpa_order"]["funding_source_token"] == "**********main"
    assert re.search(rb'"amount":150\.00[,}]', raw)  # a JSON number with two decimals
    assert response.status_code == 200
    answer = simplejson.loads(response.content, use_decimal=True)["jit_funding"]
    assert answer["token"] == message.jit_token
    assert answer["amount"] == Decimal("150.00")


def test_given_an_approval_when_notified_then_the_webhook_echoes_our_answer_in_gateway_log(
    client, jit_auth, car_rental_facts, tokens
):
    # given
    chain = approved_chain(client, jit_auth, car_rental_facts, tokens)
    plan = planner(tokens)
    # when
    plan.authorization_outcomes(chain)
    # then: shaped like the authorization webhook fixture, with our answer echoed (§4.8)
    auth, companion = plan.plan.events
    example = simplejson.loads(
        json.dumps(load_fixture("webhook_authorization")["transactions"][0]), use_decimal=True
    )
    assert same_shape(auth.body, example) == []
    log = auth.body["gpa_order"]["funding"]["gateway_log"]
    message = chain.root.message
    assert log["order_number"] == message.token
    assert log["transaction_id"] == message.jit_token
    assert log["timed_out"] is False
    assert log["message"] == "Approved or completed successfully"
    assert log["response"]["code"] == "200"
    assert log["response"]["data"]["jit_funding"]["token"] == message.jit_token
    assert auth.body["state"] == "PENDING"
    assert auth.body["subnetwork"] == "GATEWAY_JIT"
    assert companion.type == "gpa.credit.authorization"
    assert companion.status == "ignored"


def test_given_a_timeout_under_commando_when_notified_then_it_is_a_commando_stand_in(
    car_rental_facts, tokens
):
    # given: our decline came after Marqeta's 3 s; Commando Mode stood in
    message = tokens.message(type="authorization", method="pgfs.authorization",
                             amount_minor=4_000)  # fmt: skip
    gateway = GatewayOutcome(duration_ms=3000, timed_out=True, status=402, response=None)
    outcome = MarqetaOutcome(True, standin_by="COMMANDO_AUTO", standin_reason="GATEWAY_TIMEOUT")
    # when
    body = payloads.authorization_event(car_rental_facts, message, outcome=outcome,
                                        gateway=gateway)  # fmt: skip
    # then: MARQETA.md §5.1 and the stand-in fixture
    example = load_fixture("webhook_authorization_standin")["transactions"][0]
    assert same_shape(body, simplejson.loads(json.dumps(example), use_decimal=True)) == []
    assert body["standin_approved_by"] == "COMMANDO_AUTO" == body["standin_by"]
    assert body["subnetwork"] == "MANAGED_JIT"
    assert body["state"] == "PENDING"
    log = body["gpa_order"]["funding"]["gateway_log"]
    assert log == {
        "order_number": message.token,
        "transaction_id": message.jit_token,
        "duration": 3000,
        "timed_out": True,
        "message": "Operation timeout",
    }


def test_given_a_decline_when_notified_then_declined_with_the_documented_code(
    car_rental_facts, tokens
):
    message = tokens.message(type="authorization", method="pgfs.authorization",
                             amount_minor=7_500)  # fmt: skip
    declined = {"jit_funding": {"decline_reason": "INSUFFICIENT_FUNDS"}}
    gateway = GatewayOutcome(duration_ms=12, timed_out=False, status=402, response=declined)
    body = payloads.authorization_event(
        car_rental_facts,
        message,
        outcome=MarqetaOutcome(False, decline_reason="INSUFFICIENT_FUNDS"),
        gateway=gateway,
    )
    assert body["state"] == "DECLINED"  # §4.2
    assert body["response"]["code"] == "1884"
    log = body["gpa_order"]["funding"]["gateway_log"]
    assert log["response"]["code"] == "402"
    assert log["message"] == "Declined by gateway."


def test_given_a_multi_clearing_when_planned_then_it_looks_like_example_6_and_clears_the_hold(
    client, jit_auth, webhook_auth, car_rental_facts, tokens, sim_card
):
    # given: 150.00 approved and held
    chain = approved_chain(client, jit_auth, car_rental_facts, tokens)
    plan = planner(tokens)
    plan.authorization_outcomes(chain)
    chain.fate = MULTI
    # when
    plan.follow_ups(chain)
    # then: shaped like Example 6a, sequence numbers and finality as Marqeta sends them
    clearings = [e for e in plan.plan.events if e.type == "authorization.clearing"]
    example = simplejson.loads(
        json.dumps(load_fixture("webhook_clearing_1")["transactions"][0]), use_decimal=True
    )
    example.pop("incremental_authorization_transaction_tokens")  # no incrementals here
    example["gpa_order"]["jit_funding"].pop("incremental_authorization_jit_funding_tokens")
    assert [same_shape(e.body, example) for e in clearings] == [[]] * len(clearings)
    count = f"{len(clearings):02d}"
    assert [e.body["multi_clearing_sequence_number"] for e in clearings] == [
        f"{n:02d}" for n in range(1, len(clearings) + 1)
    ]
    assert {e.body["multi_clearing_sequence_count"] for e in clearings} == {count}
    assert [e.body["is_final_clearing"] for e in clearings] == [False] * (len(clearings) - 1) + [
        True
    ]
    first = clearings[0].body
    assert first["preceding_related_transaction_token"] == chain.root.message.token
    assert first["gpa_order"]["jit_funding"]["method"] == "pgfs.authorization.capture"
    assert first["gpa_order"]["jit_funding"]["original_jit_funding_token"] == (
        chain.root.message.jit_token
    )
    cleared = sum(e.message.amount_minor for e in clearings)
    released = clearings[-1].body.get("amount_to_be_released")
    assert (released or 0) == Decimal(15_000 - cleared) / 100
    # and the platform posts exactly that
    deliver(client, webhook_auth, [e for e in plan.plan.events if e.wave == 0])
    for clearing in clearings:
        deliver(client, webhook_auth, [clearing])
    wallet = funding_account_for(cardholder=Card.objects.get(token="card_91b2").cardholder).wallet
    assert balances(wallet) == (50_000 - cleared, 0)
    assert_ledger_consistent()


def test_given_a_full_reversal_when_planned_then_it_looks_like_example_5_and_releases_the_hold(
    client, jit_auth, webhook_auth, car_rental_facts, tokens
):
    # given
    chain = approved_chain(client, jit_auth, car_rental_facts, tokens, amount_minor=2_000)
    plan = planner(tokens)
    plan.authorization_outcomes(chain)
    chain.fate = FULL_REVERSAL
    # when
    plan.follow_ups(chain)
    # then
    reversal = next(e for e in plan.plan.events if e.type == "authorization.reversal")
    example = simplejson.loads(
        json.dumps(load_fixture("webhook_reversal")["transactions"][0]), use_decimal=True
    )
    assert same_shape(reversal.body, example) == []
    assert reversal.body["state"] == "CLEARED"
    assert reversal.body["gpa_order"]["state"] == "REVERSED"
    funding = reversal.body["gpa_order"]["jit_funding"]
    assert funding["method"] == "pgfs.authorization.reversal"
    assert funding["amount"] == Decimal("20.00")
    assert reversal.body["gpa"]["impacted_amount"] == Decimal("20.00")
    companions = [e for e in plan.plan.events if e.type == "gpa.credit.authorization.reversal"]
    assert len(companions) == 1
    deliver(client, webhook_auth, [e for e in plan.plan.events if e.wave == 0])
    deliver(client, webhook_auth, [e for e in plan.plan.events if e.wave == 1])
    wallet = funding_account_for(cardholder=Card.objects.get(token="card_91b2").cardholder).wallet
    assert balances(wallet) == (50_000, 0)
    assert WebhookEvent.objects.get(token=reversal.token).status == "applied"


def test_given_a_declined_auth_when_notified_then_the_platform_holds_nothing(
    client, jit_auth, webhook_auth, car_rental_facts, tokens
):
    # given: more than the 500.00 available
    message = tokens.message(type="authorization", method="pgfs.authorization",
                             amount_minor=90_000)  # fmt: skip
    request, _, response = ask(client, jit_auth, car_rental_facts, message)
    assert response.status_code == 402
    body = simplejson.loads(response.content, use_decimal=True)
    chain = Chain(facts=car_rental_facts, kind="purchase")
    chain.messages.append(
        AuthMessage(
            message=message,
            ours=DECLINED,
            decline_reason=body["jit_funding"]["decline_reason"],
            gateway=GatewayOutcome(10, False, 402, body),
            marqeta=MarqetaOutcome(False, decline_reason=body["jit_funding"]["decline_reason"]),
        )
    )
    plan = planner(tokens)
    # when
    plan.authorization_outcomes(chain)
    deliver(client, webhook_auth, plan.plan.events)
    # then
    (event,) = plan.plan.events
    assert event.body["state"] == "DECLINED"
    assert event.delta_minor == 0
    wallet = funding_account_for(cardholder=Card.objects.get(token="card_91b2").cardholder).wallet
    assert balances(wallet) == (50_000, 0)
