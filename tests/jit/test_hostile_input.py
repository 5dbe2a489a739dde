"""Hostile input at the gateway and the webhook endpoint: a 4xx with a code or a correct
answer, never a 500, and a refused request moves no money (Hypothesis generates the bodies)."""

from __future__ import annotations

import copy
import json

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from jit import cache
from tests.jit.conftest import JSON, basic, load_fixture

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40)
    | st.floats(allow_nan=False, allow_infinity=False).map(str),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)  # fmt: skip
FIELDS = [
    ("token",), ("card_token",), ("currency_code",), ("card_acceptor",), ("card_acceptor", "mcc"),
    ("card_acceptor", "country_code"), ("pos",), ("transaction_metadata",), ("gpa_order",),
    ("gpa_order", "jit_funding"), ("gpa_order", "jit_funding", "token"),
    ("gpa_order", "jit_funding", "method"), ("gpa_order", "jit_funding", "amount"),
    ("gpa_order", "jit_funding", "user_token"),
    ("gpa_order", "jit_funding", "original_jit_funding_token"),
    ("card_security_code_verification",), ("is_final_clearing",),
]  # fmt: skip


def _mutated(card, path: tuple[str, ...], value: object) -> bytes:
    body = copy.deepcopy(load_fixture("jit_authorization"))
    user = card.cardholder.token
    body.update(user_token=user, card_token=card.token)
    body["gpa_order"]["jit_funding"].update(user_token=user, token="jit-fuzz")
    target = body
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return json.dumps(body).encode()


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(FIELDS), value=json_values)
def test_given_any_value_in_a_field_we_read_when_posted_then_never_a_500(
    client, card_in_cache, path, value
):
    auth = {
        "HTTP_AUTHORIZATION": basic(settings.MARQETA_JIT_USERNAME, settings.MARQETA_JIT_PASSWORD)
    }
    before = cache.cached_available(user_token=card_in_cache.cardholder.token)
    response = client.post(
        "/jit/marqeta/", _mutated(card_in_cache, path, value), content_type=JSON, **auth
    )
    assert response.status_code in (200, 400, 402, 409, 413), response.content
    body = json.loads(response.content)
    if response.status_code in (400, 409, 413):
        assert body["code"]
        assert cache.cached_available(user_token=card_in_cache.cardholder.token) == before
    else:
        assert body["jit_funding"]["token"]


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=st.binary(max_size=300) | json_values.map(lambda value: json.dumps(value).encode()))
def test_given_arbitrary_bytes_when_posted_to_either_endpoint_then_a_4xx_or_200(client, raw):
    jit_auth = basic(settings.MARQETA_JIT_USERNAME, settings.MARQETA_JIT_PASSWORD)
    hook_auth = basic(settings.MARQETA_WEBHOOK_USERNAME, settings.MARQETA_WEBHOOK_PASSWORD)
    for path, auth in (("/jit/marqeta/", jit_auth), ("/webhooks/marqeta/", hook_auth)):
        response = client.post(path, raw, content_type=JSON, HTTP_AUTHORIZATION=auth)
        assert response.status_code < 500, (path, raw, response.content)
