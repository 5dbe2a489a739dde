"""The OpenAPI description of Marqeta's two calls to us, for drf-spectacular (`/api/schema/`).

Documentation only: the views read the raw bytes themselves (`jit/marqeta.py`,
`reconciliation/marqeta.py`, no DRF parser), so drf-spectacular cannot infer these shapes.
They are written from MARQETA.md (§2.4 the request, §4 the answers, §7 the webhook envelope)
and say what the parsers check, no more: Marqeta adds fields and methods, so unknown ones are
allowed. The schema fuzzer (`tests/security/test_fuzz_openapi.py`) generates from them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from ledger.money import CURRENCY_EXPONENTS

Schema = dict[str, Any]

TOKEN_MAX = 36  # jit/marqeta.py: tokens are at most 36 characters (MARQETA.md §2.5)
CURRENCY: Schema = {
    "type": "string",
    "enum": sorted(CURRENCY_EXPONENTS),  # others: 400 unknown_currency
    "description": "ISO 4217 alphabetic, one the ledger knows the decimals of.",
    "example": "USD",
}


def _token(description: str) -> Schema:
    """Marqeta's tokens: strings of at most 36 characters; numbers are [seen] and read as
    their decimal text (jit/marqeta.py `_text`)."""
    return {
        "description": description,
        "anyOf": [{"type": "string", "minLength": 1, "maxLength": TOKEN_MAX}, {"type": "number"}],
    }


# A decimal number, or its string ("1.00" in Marqeta's support example); never a float in our
# code. At most the currency's decimals (2 for USD) and below 10^15 minor units.
AMOUNT: Schema = {
    "description": "Amount in the currency's major unit, e.g. 150.00; at most its decimals.",
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^[0-9]{1,13}(\.[0-9]{1,3})?$"},
    ],
}

ERROR_BODY: Schema = {
    "type": "object",
    "description": "Every refusal (config/errors.py): a stable `code` clients match on.",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {"type": "string", "example": "invalid_amount"},
        "message": {"type": "string"},
        "details": {"type": "object", "additionalProperties": True},
    },
}

METHOD: Schema = {
    "description": "e.g. pgfs.authorization; unknown methods are answered, never 5xx.",
    "anyOf": [{"type": "string", "minLength": 1, "maxLength": 80}, {"type": "number"}],
}

JIT_FUNDING: Schema = {
    "type": "object",
    "description": "MARQETA.md §2.4. The gateway decides on `amount` of this message only.",
    "required": ["token", "method", "user_token", "amount"],
    "properties": {
        "token": _token("This JIT message; the gateway's idempotency key."),
        "method": METHOD,
        "user_token": _token("The account holder funded."),
        "acting_user_token": {"type": "string"},
        "amount": AMOUNT,
        "original_jit_funding_token": _token("The first JIT message of the chain."),
        "incremental_authorization_jit_funding_tokens": {
            "type": "array",
            "items": {"type": "string"},
        },
        "address_verification": {"type": "object"},
    },
}

CARD_ACCEPTOR: Schema = {
    "type": "object",
    "description": "The merchant. `name` is shown to support in the admin and card history.",
    "properties": {
        "mid": {"type": "string"},
        "mcc": {"type": "string", "maxLength": 4, "example": "7512"},
        "name": {"type": "string", "maxLength": 100},
        "city": {"type": "string"},
        "state": {"type": "string"},
        "country_code": {"type": "string", "maxLength": 3, "example": "USA"},
    },
}


def _gpa_order(description: str, *, currency: Schema, required: list[str]) -> Schema:
    return {
        "type": "object",
        "description": description,
        "required": required,
        "properties": {
            "token": {"type": "string"},
            "amount": {"type": "number"},
            "currency_code": currency,
            "state": {"type": "string"},
            "jit_funding": JIT_FUNDING,
        },
    }


def _funding_container(description: str) -> Schema:
    """A request's `gpa_order` / `gpa_order_unload`: the JIT message is what it is for."""
    return _gpa_order(description, currency=CURRENCY, required=["jit_funding"])


JIT_REQUEST: Schema = {
    "type": "object",
    "description": (
        "A Marqeta transaction (`transaction_model`, state PENDING) carrying "
        "`gpa_order.jit_funding` (a load) or `gpa_order_unload.jit_funding` (an unload). "
        "Every other field is optional and unknown fields are ignored (MARQETA.md §2)."
    ),
    "properties": {
        "token": _token("The transaction token."),
        "type": {"type": "string", "example": "authorization"},
        "state": {"type": "string", "example": "PENDING"},
        "user_token": {"type": "string"},
        "card_token": _token("Required to decide an authorization."),
        "amount": {"type": "number"},
        "currency_code": {**CURRENCY, "description": "Else gpa_order.currency_code is read."},
        "card_acceptor": CARD_ACCEPTOR,
        "pos": {"type": "object"},
        "transaction_metadata": {"type": "object"},
        "card_security_code_verification": {"type": "object"},
        "is_final_clearing": {"type": "boolean"},
        "gpa_order": _funding_container("A load: authorizations, incrementals, advices."),
        "gpa_order_unload": _funding_container("An unload: refunds, original credits."),
    },
    "required": ["currency_code"],
    "anyOf": [{"required": ["gpa_order"]}, {"required": ["gpa_order_unload"]}],
}

JIT_EXAMPLE: dict[str, Any] = {  # MARQETA.md §11 Example 1, shortened
    "type": "authorization",
    "state": "PENDING",
    "token": "txn-a-auth",
    "user_token": "user_7f3a",
    "card_token": "card_91b2",
    "amount": 150.00,
    "currency_code": "USD",
    "card_acceptor": {"mcc": "7512", "name": "SUNSET CAR RENTAL", "country_code": "USA"},
    "pos": {"card_presence": True},
    "transaction_metadata": {"payment_channel": "OTHER"},
    "gpa_order": {
        "token": "gpo-a-auth",
        "amount": 150.00,
        "currency_code": "USD",
        "state": "PENDING",
        "jit_funding": {
            "token": "jit-a-auth",
            "method": "pgfs.authorization",
            "user_token": "user_7f3a",
            "acting_user_token": "user_7f3a",
            "amount": 150.00,
        },
    },
}


def _jit_answer(*, declined: bool) -> Schema:
    """The request's `jit_funding` echoed as received (MARQETA.md §4.1), plus our answer."""
    funding = {
        "type": "object",
        "required": ["token", "method", "user_token", "amount", "tags"],
        "properties": {
            "token": _token("As received."),
            "method": METHOD,
            "user_token": _token("As received."),
            "amount": {"description": "As received (a number, or the string sent)."},
            "tags": {"type": "string", "example": "reason=APPROVED"},
            "balances": {"type": "object", "description": "Balance inquiries only (§4.6)."},
        },
    }
    if declined:
        funding["required"] = [*funding["required"], "decline_reason"]
        funding["properties"]["decline_reason"] = {"type": "string"}
    return {"type": "object", "required": ["jit_funding"], "properties": {"jit_funding": funding}}


def _refusal(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ERROR_BODY, description=description)


JIT_SCHEMA: dict[str, Any] = {
    "summary": "Marqeta JIT funding request: approve, decline or answer a balance inquiry",
    "request": {"application/json": JIT_REQUEST},
    "examples": [OpenApiExample("authorization", value=JIT_EXAMPLE, request_only=True)],
    "responses": {
        200: OpenApiResponse(_jit_answer(declined=False), description="approved (or advice)"),
        402: OpenApiResponse(_jit_answer(declined=True), description="declined"),
        400: _refusal("malformed body or a field the decision reads is invalid"),
        401: _refusal("missing or wrong Basic credentials"),
        405: _refusal("only POST"),
        409: _refusal("this jit_funding.token was used for another request"),
        413: _refusal("the body is over MAX_REQUEST_BYTES"),
    },
}

WEBHOOK_EVENT: Schema = {
    "type": "object",
    "description": "One notification: a transaction (MARQETA.md §2.2) or another category's.",
    "properties": {
        "token": {"type": "string"},
        "type": {"type": "string", "example": "authorization.clearing"},
        "state": {"type": "string", "example": "COMPLETION"},
        "user_token": {"type": "string"},
        "card_token": {"type": "string"},
        "preceding_related_transaction_token": {"type": "string", "nullable": True},
        "amount": {"type": "number"},
        "currency_code": {"type": "string"},
        "card_acceptor": CARD_ACCEPTOR,
        "gpa_order": _gpa_order(
            "The funding leg; jit_funding names the JIT message.",
            currency={"type": "string"},
            required=[],
        ),
    },
}

WEBHOOK_ENVELOPE: Schema = {
    "type": "object",
    "description": (
        "One array per category (MARQETA.md §7.2), e.g. `transactions`, `cards`, `pings`; "
        "category names are lower case, at most 40 characters."
    ),
    "properties": {"transactions": {"type": "array", "items": WEBHOOK_EVENT}},
    "additionalProperties": {"type": "array", "items": {"type": "object"}},
}

WEBHOOK_SCHEMA: dict[str, Any] = {
    "summary": "Marqeta webhook notifications: stored raw, answered 200, applied later",
    "request": {"application/json": WEBHOOK_ENVELOPE},
    "parameters": [
        OpenApiParameter(
            "X-Marqeta-Signature",
            str,
            OpenApiParameter.HEADER,
            description="Hex HMAC-SHA256 of the raw body; required when a secret is set.",
        )
    ],
    "responses": {
        200: OpenApiResponse(
            {
                "type": "object",
                "required": ["received", "duplicates"],
                "properties": {
                    "received": {"type": "integer"},
                    "duplicates": {"type": "integer"},
                },
            },
            description="stored (or already stored: duplicates)",
        ),
        400: _refusal("not a JSON object of event arrays"),
        401: _refusal("missing or wrong Basic credentials"),
        403: _refusal("X-Marqeta-Signature missing or wrong (when a secret is set)"),
        405: _refusal("only POST"),
        413: _refusal("the body is over MARQETA_WEBHOOK_MAX_BYTES"),
    },
}


class _MarqetaBasicScheme(OpenApiAuthenticationExtension):
    """HTTP Basic checked against settings (jit/auth.py): one scheme per credential pair."""

    description = ""

    def get_security_definition(self, auto_schema: object) -> Schema:
        return {"type": "http", "scheme": "basic", "description": self.description}


class MarqetaJitBasicScheme(_MarqetaBasicScheme):
    target_class = "jit.auth.MarqetaJitAuthentication"
    name = "marqetaJitBasic"
    description = "MARQETA_JIT_USERNAME / MARQETA_JIT_PASSWORD"


class MarqetaWebhookBasicScheme(_MarqetaBasicScheme):
    target_class = "reconciliation.api.views.MarqetaWebhookAuthentication"
    name = "marqetaWebhookBasic"
    description = "MARQETA_WEBHOOK_USERNAME / MARQETA_WEBHOOK_PASSWORD"
