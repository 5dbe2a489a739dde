"""Schema fuzzing (schemathesis) of every operation in the OpenAPI schema: the JIT gateway, the
webhook endpoint and the internal API, in-process against the real PostgreSQL and Redis.

Each generated request, valid or deliberately invalid (schemathesis' positive and negative
modes), is sent with the caller's real credentials, and:

- is never answered 5xx;
- a 4xx carries the API's error body `{code, message, details}` (a JIT 402 is a decline:
  Marqeta's `jit_funding` echo with a `decline_reason`);
- a refusal writes nothing: every row of the apps' tables and every key of the gateway's
  Redis are the same after it as before.

`FUZZ_EXAMPLES` (tests/security/conftest.py) sets the examples per operation.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.conftest import (
    DEMO_CARD,
    DEMO_USER,
    FUZZ_EXAMPLES,
    FUZZ_TALLY,
    jit_basic,
    webhook_basic,
    written_state,
)

JIT, WEBHOOK = "/jit/marqeta/", "/webhooks/marqeta/"
MARQETA_PATHS = (JIT, WEBHOOK)  # described in full by jit/api/openapi.py: every status


def openapi_document() -> dict[str, Any]:
    """The document `/api/schema/` serves, built by drf-spectacular without a request."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": FUZZ_EXAMPLES, "mode": "all"},
            "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        }
    ),
)


@schema.hook
def flatmap_path_parameters(context: object, path_parameters: dict | None) -> st.SearchStrategy:
    """Half the time, name the demo card and cardholder: a random token only ever finds 404."""
    real = {
        name: DEMO_CARD if name == "card_token" else DEMO_USER
        for name in path_parameters or {}
        if name in ("card_token", "cardholder_token")
    }
    if not real:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {**path_parameters, **real}])


def _aimed_at_demo_card(body: Any) -> Any:
    """The same JIT body in USD with its tokens pointing at the demo card, where its shape
    allows: a random token or currency stops at an unknown account or currency."""
    funding = body.get("gpa_order") if isinstance(body, dict) else None
    funding = funding.get("jit_funding") if isinstance(funding, dict) else None
    if not isinstance(funding, dict):
        return body
    aimed = {**body, "card_token": DEMO_CARD, "user_token": DEMO_USER, "currency_code": "USD"}
    aimed["gpa_order"] = {**body["gpa_order"], "jit_funding": {**funding, "user_token": DEMO_USER}}
    return aimed


def _with_amount(body: Any, amount: Decimal) -> Any:
    """A deposit body with a well-formed USD amount (the schema says only "string")."""
    if not isinstance(body, dict):
        return body
    return {**body, "amount": str(amount), "currency_code": "USD"}


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
    """Half the JIT bodies reach the real, funded card, so the decision script runs in full
    (approvals, holds, controls); half the deposits carry a valid amount, so they post."""
    if context.operation.path == JIT:
        return st.sampled_from([body, _aimed_at_demo_card(body)])
    if context.operation.path.endswith("/deposits/"):
        amounts = st.decimals(min_value=0, max_value=10**6, places=2)
        return st.one_of(st.just(body), amounts.map(lambda amount: _with_amount(body, amount)))
    return st.just(body)


def credentials(path: str, api_token: str) -> dict[str, str]:
    """The Authorization header the caller of `path` really sends."""
    if path == JIT:
        return {"Authorization": jit_basic()}
    if path == WEBHOOK:
        return {"Authorization": webhook_basic()}
    return {"Authorization": f"Token {api_token}"}


def assert_refusal_body(response: Any, *, declined: bool) -> None:
    """A 4xx is the API's error body, or for a JIT decline Marqeta's echo with a reason."""
    body = response.json()
    if declined:
        assert body["jit_funding"]["decline_reason"], body
        return
    assert isinstance(body, dict), body
    assert isinstance(body.get("code"), str), body
    assert body["code"], body
    assert isinstance(body.get("message"), str), body
    assert isinstance(body.get("details"), dict), body


def checks_for(path: str) -> list:
    """Never 5xx everywhere; full response conformance where the schema documents every
    status (the Marqeta endpoints). The internal API's schema lists only its successes."""
    if path in MARQETA_PATHS:
        return [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    return [not_a_server_error]


@pytest.mark.django_db
@schema.parametrize()
@settings(  # the fixtures are read-only context; each example checks its own writes
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_given_schema_generated_request_when_sent_then_no_5xx_coded_4xx_and_no_write_on_refusal(
    case, demo_card, superuser_token, in_process_wsgi
):
    # given
    before = written_state()
    # when
    response = case.call(app=in_process_wsgi, headers=credentials(case.path, superuser_token))
    FUZZ_TALLY[f"{case.method} {case.path}", response.status_code] += 1
    # then
    case.validate_response(response, checks=checks_for(case.path))
    declined = case.path == JIT and response.status_code == 402
    if 400 <= response.status_code < 500:
        assert_refusal_body(response, declined=declined)
    if 400 <= response.status_code < 500 and not declined:
        assert written_state() == before, (
            f"a {response.status_code} wrote: {case.as_curl_command()}"
        )
