"""Hand-written hostile requests at the real limits, beyond the schema fuzzer and the tests of
each app (tests/jit/test_hostile_input.py, tests/jit/test_gateway.py, tests/cards/test_api.py,
tests/reconciliation/test_views.py): huge and lying bodies at the default limits, nesting up
to the parsers' recursion limit, wrong types on the internal API, negative and giant amounts
end to end (into the ledger writer and the webhook task), unknown HTTP and Marqeta methods,
replayed tokens with other requests, bad signatures. Always a coded 4xx or a correct answer,
never a 5xx, and a refusal writes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.conf import settings
from django.test import Client

from jit import cache
from jit.outbox import drain_outbox
from ledger.models import LedgerTransaction
from reconciliation.models import WebhookEvent
from reconciliation.services import apply_webhook_event
from tests.jit.conftest import JSON, jit_body
from tests.ledger.helpers import assert_ledger_consistent
from tests.reconciliation.conftest import envelope, signed, transaction
from tests.security.conftest import DEMO_USER, jit_basic, webhook_basic, written_state

pytestmark = pytest.mark.django_db

JIT, WEBHOOK = "/jit/marqeta/", "/webhooks/marqeta/"
DEPOSITS, CONTROLS = (
    f"/api/v1/cardholders/{DEMO_USER}/deposits/",
    "/api/v1/cards/card_91b2/controls/",
)
SECRET = "webhook-hmac-secret-for-tests-0123"


@pytest.fixture
def callers(superuser_token) -> dict[str, dict[str, str]]:
    """The real credentials of each endpoint's caller."""
    return {
        JIT: {"HTTP_AUTHORIZATION": jit_basic()},
        WEBHOOK: {"HTTP_AUTHORIZATION": webhook_basic()},
        "api": {"HTTP_AUTHORIZATION": f"Token {superuser_token}"},
    }


def auth_for(path: str, callers: dict) -> dict[str, str]:
    return callers.get(path, callers["api"])


def assert_refused_without_writes(response, before: tuple[str, str], *, status: int | None = None):
    """A 4xx with the API's error body, and PostgreSQL and Redis exactly as before."""
    assert 400 <= response.status_code < 500, response.content[:300]
    if status is not None:
        assert response.status_code == status, response.content[:300]
    body = json.loads(response.content)
    assert set(body) == {"code", "message", "details"}, body
    assert written_state() == before


def assert_answered(response, before: tuple[str, str]) -> None:
    """Never a 5xx; a refusal is coded and wrote nothing (JIT declines, 402, are answers)."""
    assert response.status_code < 500, response.content[:300]
    if 400 <= response.status_code < 500 and response.status_code != 402:
        assert_refused_without_writes(response, before)


def available_minor() -> int:
    return cache.cached_available(user_token=DEMO_USER)


# --- huge and lying bodies, at the default limits -----------------------------------------


@pytest.mark.parametrize(
    ("path", "limit_setting"),
    [(JIT, "DATA_UPLOAD_MAX_MEMORY_SIZE"), (WEBHOOK, "MARQETA_WEBHOOK_MAX_BYTES"),
     ("/api/v1/cardholders/", "DATA_UPLOAD_MAX_MEMORY_SIZE"),
     (DEPOSITS, "DATA_UPLOAD_MAX_MEMORY_SIZE")],
)  # fmt: skip
def test_given_body_one_byte_over_the_default_limit_when_posted_then_413_and_nothing_written(
    client, demo_card, callers, path, limit_setting
):
    # given: a valid JSON object of exactly limit + 1 bytes
    limit = getattr(settings, limit_setting)
    body = b'{"pad": "' + b"x" * (limit + 1 - 11) + b'"}'
    assert len(body) == limit + 1
    before = written_state()
    # when
    response = client.post(
        path, body, content_type=JSON, HTTP_IDEMPOTENCY_KEY="big", **auth_for(path, callers)
    )
    # then
    assert_refused_without_writes(response, before, status=413)
    assert response.json()["code"] == "request_too_large"


@pytest.mark.parametrize("path", [JIT, WEBHOOK, "/api/v1/cardholders/", DEPOSITS, CONTROLS])
@pytest.mark.parametrize("declared", ["10000000000", "0", "3"])  # gunicorn refuses non-digits
def test_given_a_lying_content_length_when_posted_then_coded_4xx_or_answer(
    client, demo_card, callers, path, declared
):
    before = written_state()
    method = client.put if path == CONTROLS else client.post
    response = method(
        path, b'{"a": 1}', content_type=JSON, CONTENT_LENGTH=declared, HTTP_IDEMPOTENCY_KEY="cl",
        **auth_for(path, callers),
    )  # fmt: skip
    assert_answered(response, before)
    if declared == "10000000000":
        assert response.status_code == 413


# --- nesting up to and past the parsers' recursion limit -----------------------------------

DEPTHS = [33, 100, 500, *range(880, 1000, 6)]  # the JSON parsers give up near 1,000


def nest(depth: int) -> str:
    return "[" * depth + "]" * depth


def with_raw(document: dict, raw: str) -> str:
    """`document` as JSON, its "__RAW__" string replaced by `raw`: JSON no encoder would write."""
    return json.dumps(document, default=str).replace('"__RAW__"', raw)


def _nested_jit(card, depth: int) -> str:
    body = json.loads(jit_body(card, token=f"jit-deep-{depth}", amount="1.00"))
    body["gpa_order"]["jit_funding"]["address_verification"] = "__RAW__"
    return with_raw(body, nest(depth))


@pytest.mark.parametrize("depth", DEPTHS)
def test_given_deeply_nested_json_when_posted_anywhere_then_never_a_5xx(
    client, demo_card, callers, depth
):
    for path, body in (
        (JIT, _nested_jit(demo_card, depth)),
        (
            WEBHOOK,
            with_raw({"transactions": [{"token": f"deep-{depth}", "x": "__RAW__"}]}, nest(depth)),
        ),
        (
            DEPOSITS,
            with_raw({"amount": "1.00", "currency_code": "USD", "x": "__RAW__"}, nest(depth)),
        ),
        (CONTROLS, with_raw({"control": {}, "limits": [], "x": "__RAW__"}, nest(depth))),
    ):
        before = written_state()
        method = client.put if path == CONTROLS else client.post
        response = method(
            path, body, content_type=JSON, HTTP_IDEMPOTENCY_KEY=f"deep-{depth}",
            **auth_for(path, callers),
        )  # fmt: skip
        assert_answered(response, before)
        if path == WEBHOOK:  # stored rows are walked recursively later: never deeper than 32
            assert response.status_code == (200 if depth <= 30 else 400), response.content
    drain_outbox()  # the approvals the gateway took reach the ledger
    assert_ledger_consistent()


# --- text PostgreSQL cannot store --------------------------------------------------------

UNSTORABLE = ["PARKING\\u0000LOT", "\\ud800", "caf\\udce9"]  # JSON escapes: NUL, lone surrogates


@pytest.mark.parametrize("text", UNSTORABLE)
@pytest.mark.parametrize("field", ["name", "mcc", "token", "method"])
def test_given_unstorable_text_in_a_jit_field_when_sent_then_400_before_anything_is_held(
    client, demo_card, field, text
):
    # given: the text as Marqeta's JSON would escape it
    body = json.loads(jit_body(demo_card, token="jit-nul", amount="1.00"))
    where = body["card_acceptor"] if field in ("name", "mcc") else body["gpa_order"]["jit_funding"]
    where[field] = "__RAW__"
    drain_outbox()  # creates the outbox's consumer groups, so only the request can write
    before = written_state()
    # when
    response = client.post(
        JIT, with_raw(body, f'"{text}"'), content_type=JSON, HTTP_AUTHORIZATION=jit_basic()
    )
    # then
    assert_refused_without_writes(response, before, status=400)
    assert drain_outbox() == 0  # an approval used to get here and fail its batch at every retry


@pytest.mark.parametrize("text", UNSTORABLE)
def test_given_unstorable_text_in_a_webhook_when_posted_then_400_and_nothing_stored(client, text):
    before = written_state()
    event = transaction("webhook_force_post", token="txn-nul", card_acceptor={"name": "__RAW__"})
    raw = with_raw({"transactions": [event]}, f'"{text}"')
    response = client.post(WEBHOOK, raw, content_type=JSON, **_webhook_auth())
    assert_refused_without_writes(response, before, status=400)
    assert response.json()["code"] == "malformed_webhook"


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/cardholders/a%00b/balance/"), ("get", "/api/v1/cards/%00/transactions/"),
     ("get", "/api/v1/cards/card_91b2%00/controls/"), ("put", "/api/v1/cards/%00/controls/"),
     ("post", "/api/v1/cardholders/%00/deposits/")],
)  # fmt: skip
def test_given_a_nul_in_a_path_token_when_called_then_404_not_found(
    client, demo_card, callers, method, path
):
    before = written_state()
    body = {"amount": "1.00", "currency_code": "USD", "control": {}, "limits": []}
    data = json.dumps(body) if method != "get" else None
    response = getattr(client, method)(
        path, data, content_type=JSON, HTTP_IDEMPOTENCY_KEY="nul", **callers["api"]
    )
    assert_refused_without_writes(response, before, status=404)


# --- wrong types on the internal API --------------------------------------------------------

WRONG_CONTROLS = [
    {"control": [], "limits": []},
    {"control": "none", "limits": []},
    {"control": None, "limits": []},
    {"control": {}, "limits": {}},
    {"control": {}, "limits": [1, 2]},
    {"control": {}, "limits": [{"window": "day", "max_count": 10**30}]},
    {"control": {}, "limits": [{"window": "day", "max_count": -1}]},
    {"control": {}, "limits": [{"window": "day", "max_count": 1.5}]},
    {"control": {}, "limits": [{"window": "fortnight", "max_count": 1}]},
    {"control": {}, "limits": [{"window": "x" * 10_000, "max_count": 1}]},
    {"control": {}, "limits": [{"window": "day", "max_amount": "-1.00"}]},
    {"control": {}, "limits": [{"window": "day", "max_amount": "1e300"}]},
    {"control": {}, "limits": [{"window": "day", "max_amount": {"$gt": 0}}]},
    {"control": {"max_transaction": "-0.01"}, "limits": []},
    {"control": {"max_transaction": "9" * 400}, "limits": []},
    {"control": {"max_transaction": [1]}, "limits": []},
    {"control": {"mcc_block": [{"mcc": "7995"}]}, "limits": []},
    {"control": {"mcc_block": ["79955"]}, "limits": []},
    {"control": {"mcc_block": "7995"}, "limits": []},
    {"control": {"mcc_groups_allow": ["no-such-group"]}, "limits": []},
    {"control": {"blocked_countries": ["U" * 1000]}, "limits": []},
    {"control": {"allowed_channels": ["TELEPATHY"]}, "limits": []},
    {"control": {}, "limits": [], "reason": ["not", "text"]},
]


@pytest.mark.parametrize("body", WRONG_CONTROLS)
def test_given_wrong_types_in_a_controls_change_when_put_then_400_and_nothing_written(
    client, demo_card, callers, body
):
    before = written_state()
    response = client.put(CONTROLS, json.dumps(body), content_type=JSON, **callers["api"])
    assert_refused_without_writes(response, before, status=400)


WRONG_CREATES = [
    ("/api/v1/cardholders/", {"token": "user_<script>"}),
    ("/api/v1/cardholders/", {"email": ["a@example.com"]}),
    ("/api/v1/cardholders/", {"first_name": "x" * 10_000}),
    ("/api/v1/cardholders/", {"first_name": {"$ne": None}}),
    ("/api/v1/cards/", {"cardholder_token": {"token": DEMO_USER}}),
    ("/api/v1/cards/", {"cardholder_token": DEMO_USER, "last_four": 12345}),
    ("/api/v1/cards/", {"cardholder_token": DEMO_USER, "token": "card_91b2' OR '1'='1"}),
    (DEPOSITS, {"amount": "9" * 400, "currency_code": "USD"}),
    (DEPOSITS, {"amount": "-0.01", "currency_code": "USD"}),
    (DEPOSITS, {"amount": "1E+15", "currency_code": "USD"}),
    (DEPOSITS, {"amount": "1.00", "currency_code": ["USD"]}),
]


@pytest.mark.parametrize(("path", "body"), WRONG_CREATES)
def test_given_wrong_types_in_a_create_when_posted_then_4xx_and_nothing_written(
    client, demo_card, callers, path, body
):
    before = written_state()
    response = client.post(
        path, json.dumps(body), content_type=JSON, HTTP_IDEMPOTENCY_KEY="wrong", **callers["api"]
    )
    assert_refused_without_writes(response, before)


# --- negative and giant amounts, end to end -------------------------------------------------

ADVICE_METHODS = [
    "pgfs.authorization.reversal",
    "pgfs.authorization.capture",
    "pgfs.force_capture",
    "pgfs.refund",
]


@pytest.mark.parametrize("method", ["pgfs.authorization", *ADVICE_METHODS])
@pytest.mark.parametrize("amount", ["-0.01", "-1e2", "1e15", "99999999999999.99", '"-5.00"'])
def test_given_negative_or_giant_amount_when_sent_to_the_gateway_then_400_and_nothing_moves(
    client, demo_card, method, amount
):
    before = written_state()
    body = jit_body(demo_card, token="jit-amount", amount=amount, method=method)
    response = client.post(JIT, body, content_type=JSON, HTTP_AUTHORIZATION=jit_basic())
    assert_refused_without_writes(response, before, status=400)


@pytest.mark.parametrize("method", ADVICE_METHODS)
def test_given_the_largest_advice_when_sent_then_answered_and_the_ledger_stays_consistent(
    client, demo_card, method
):
    # given: just below 10^15 minor units, the most the ledger takes
    body = jit_body(demo_card, token="jit-huge", amount="9999999999999.99", method=method)
    # when
    response = client.post(JIT, body, content_type=JSON, HTTP_AUTHORIZATION=jit_basic())
    drain_outbox()
    # then: an advice is never refused; the ledger writer posts it or records why it cannot
    assert response.status_code == 200, response.content
    assert_ledger_consistent()


@pytest.mark.parametrize("amount", ["-12.00", "-1e20", "1e20", "12.001", "1e999"])
def test_given_webhook_with_a_bad_amount_when_applied_then_refused_with_a_code_and_no_money(
    client, demo_card, amount
):
    # given: a force post (no authorization) whose amount is stored as sent
    event = transaction("webhook_force_post", token=f"txn-bad-{amount}", jit={"amount": amount})
    response = client.post(WEBHOOK, envelope(event), content_type=JSON, **_webhook_auth())
    assert response.status_code == 200, response.content
    postings = LedgerTransaction.objects.count()
    # when
    applied = apply_webhook_event(event=WebhookEvent.objects.get(token=f"txn-bad-{amount}"))
    # then
    assert (applied.status, bool(applied.error_code)) == ("failed", True)
    assert LedgerTransaction.objects.count() == postings
    assert_ledger_consistent()


def _webhook_auth() -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": webhook_basic()}


# --- unknown HTTP methods and unknown Marqeta methods ---------------------------------------

ENDPOINT_METHODS = {  # what each view serves; every other verb is refused
    JIT: {"POST", "OPTIONS"},  # DRF's OPTIONS: the view's name and media types, nothing else
    WEBHOOK: {"POST", "OPTIONS"},
    "/api/v1/cardholders/": {"POST"},
    "/api/v1/cards/": {"POST"},
    DEPOSITS: {"POST"},
    CONTROLS: {"GET", "PUT"},
    f"/api/v1/cardholders/{DEMO_USER}/balance/": {"GET"},
    "/api/v1/cards/card_91b2/transactions/": {"GET"},
}
VERBS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "BREW"]


def test_given_valid_credentials_when_using_an_unserved_http_method_then_refused_with_a_code(
    client, demo_card, callers
):
    before, refused = written_state(), 0
    for path, served in ENDPOINT_METHODS.items():
        for verb in (verb for verb in VERBS if verb not in served):
            response = client.generic(verb, path, b"{}", JSON, **auth_for(path, callers))
            assert response.status_code in (403, 405), (verb, path, response.status_code)
            assert response.json()["code"] in ("method_not_allowed", "permission_denied")
            refused += 1
    assert written_state() == before
    assert refused > 50


@pytest.mark.parametrize(
    "method", ["pgfs.unknown", "PGFS.AUTHORIZATION", "pgfs.authorization ", "m" * 80, "<script>"]
)
def test_given_an_unknown_jit_method_when_sent_then_402_declined_and_nothing_held(
    client, demo_card, method
):
    before = available_minor()
    body = jit_body(demo_card, token="jit-unknown", method=method)
    response = client.post(JIT, body, content_type=JSON, HTTP_AUTHORIZATION=jit_basic())
    assert response.status_code == 402, response.content
    assert response.json()["jit_funding"]["decline_reason"]
    assert available_minor() == before


# --- replayed tokens with another request ---------------------------------------------------


def _jit(client: Client, card, **fields) -> int:
    body = jit_body(card, **fields)
    return client.post(JIT, body, content_type=JSON, HTTP_AUTHORIZATION=jit_basic()).status_code


@pytest.mark.parametrize(
    "replay",
    [
        {"method": "pgfs.authorization.reversal", "original": "jit-first"},
        {"amount": "1.00"},
        {"amount": "10.001"},
        {"method": "pgfs.refund"},
    ],
)
def test_given_an_approved_token_when_replayed_as_another_request_then_409_and_nothing_moves(
    client, demo_card, replay
):
    # given
    assert _jit(client, demo_card, token="jit-first", amount="10.00") == 200
    before = written_state()
    # when
    status = _jit(client, demo_card, **{"token": "jit-first", "amount": "10.00", **replay})
    # then
    assert status in (400, 409)
    assert written_state() == before


def test_given_a_declined_token_when_replayed_with_an_amount_that_fits_then_still_not_approved(
    client, demo_card
):
    assert _jit(client, demo_card, token="jit-big", amount="300.00") == 402
    before = available_minor()
    assert _jit(client, demo_card, token="jit-big", amount="3.00") == 409
    assert _jit(client, demo_card, token="jit-big", amount="300.00") == 402  # the first answer
    assert available_minor() == before


def test_given_a_reversal_token_when_replayed_with_another_amount_then_released_once(
    client, demo_card
):
    # given: 10.00 held, 4.00 of it released
    assert _jit(client, demo_card, token="jit-held", amount="10.00") == 200
    release = {"method": "pgfs.authorization.reversal", "original": "jit-held"}
    assert _jit(client, demo_card, token="jit-rel", amount="4.00", **release) == 200
    after_release = available_minor()
    # when: the same reversal token, claiming 9.00
    status = _jit(client, demo_card, token="jit-rel", amount="9.00", **release)
    drain_outbox()
    # then
    assert status == 409
    assert available_minor() == after_release == 25_000 - 600
    assert_ledger_consistent()


def test_given_a_webhook_token_when_resent_with_another_amount_then_the_first_body_stands(
    client, demo_card
):
    first = transaction("webhook_force_post", token="txn-twice", jit={"amount": "12.00"})
    second = transaction("webhook_force_post", token="txn-twice", jit={"amount": "99.00"})
    client.post(WEBHOOK, envelope(first), content_type=JSON, **_webhook_auth())
    response = client.post(WEBHOOK, envelope(second), content_type=JSON, **_webhook_auth())
    assert response.json() == {"received": 1, "duplicates": 1}
    stored = WebhookEvent.objects.get(token="txn-twice")
    assert stored.raw["gpa_order"]["jit_funding"]["amount"] == "12.00"


# --- bad webhook signatures -----------------------------------------------------------------


def _sha1(body: bytes) -> str:
    return hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()


@pytest.mark.parametrize(
    ("signature_of", "basic"),
    [
        (_sha1, webhook_basic),  # the legacy algorithm is not accepted
        (lambda body: "sha256=" + signed(body, SECRET), webhook_basic),
        (lambda body: signed(body, SECRET) * 2_000, webhook_basic),  # 128 KB header
        (lambda body: signed(body, SECRET)[:-1], webhook_basic),
        (lambda body: signed(body, SECRET), jit_basic),  # right signature, wrong caller
    ],
)
def test_given_a_secret_when_the_signature_or_caller_is_wrong_then_refused_and_nothing_stored(
    client, settings, signature_of, basic
):
    # given
    settings.MARQETA_WEBHOOK_SECRET = SECRET
    body = envelope(transaction("webhook_force_post", token="txn-signed"))
    before = written_state()
    # when
    response = client.post(
        WEBHOOK, body, content_type=JSON, HTTP_AUTHORIZATION=basic(),
        HTTP_X_MARQETA_SIGNATURE=signature_of(body),
    )  # fmt: skip
    # then
    assert_refused_without_writes(response, before)
    assert response.status_code in (401, 403)


def test_given_a_secret_when_the_signature_is_upper_case_hex_then_accepted(client, settings):
    settings.MARQETA_WEBHOOK_SECRET = SECRET
    body = envelope(transaction("webhook_force_post", token="txn-upper"))
    response = client.post(
        WEBHOOK, body, content_type=JSON, HTTP_X_MARQETA_SIGNATURE=signed(body, SECRET).upper(),
        **_webhook_auth(),
    )  # fmt: skip
    assert response.status_code == 200
