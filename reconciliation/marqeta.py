"""Read Marqeta webhook notifications (MARQETA.md §6, §7): envelopes in, typed views out.

The body is checked (signature on the raw bytes) before it is parsed, parsed once with Decimal
numbers, and each event is stored with its numbers as decimal strings: a float never exists.
Fields are read leniently (Marqeta adds fields; §2.5): what is missing is empty.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import simplejson
from django.utils.dateparse import parse_datetime

from jit.marqeta import is_storable
from ledger.money import to_minor
from reconciliation.errors import BadSignature, MalformedWebhook

MAX_DEPTH = 32  # Marqeta's events nest about 12 levels; the walks below recurse once a level
TOKEN_MAX = 80  # Marqeta's are at most 36; anything longer is keyed by the event's hash
CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_.]{0,39}$")
TRANSACTIONS, PINGS = "transactions", "pings"
APPROVED_STATES = frozenset({"PENDING", "CLEARED", "COMPLETION"})
NOT_APPROVED_STATES = frozenset({"DECLINED", "ERROR"})
STANDIN_SUBNETWORK = "MANAGED_JIT"

# Transaction types (§6.2) by what they do to our ledger. Anything else is recorded only.
AUTH_TYPES = frozenset(
    {
        "authorization",
        "authorization.incremental",
        "authorization.standin",
        "authorization.cashback",
        "authorization.atm.withdrawal",
        "authorization.quasi.cash",
        "pindebit",
        "pindebit.authorization",
        "pindebit.atm.withdrawal",
        "pindebit.cashback",
        "pindebit.quasi.cash",
    }
)
RELEASE_TYPES = frozenset(
    {"authorization.reversal", "pindebit.authorization.reversal", "pindebit.reversal"}
)
EXPIRY_TYPES = frozenset(
    {
        "authorization.reversal.issuerexpiration",
        "pindebit.authorization.reversal.issuerexpiration",
    }
)
ADVICE_TYPES = frozenset({"authorization.advice"})  # a decrease releases (method: a reversal)
CLEARING_TYPES = frozenset(
    {
        "authorization.clearing",
        "authorization.clearing.cashback",
        "authorization.clearing.atm.withdrawal",
        "authorization.clearing.quasi.cash",
        "pindebit.authorization.clearing",
    }
)
REFUND_TYPES = frozenset({"refund", "refund.authorization.clearing", "pindebit.refund"})
POSTED_STATES = frozenset({"COMPLETION", "CLEARED"})


def expected_signature(*, body: bytes, secret: str) -> str:
    """The hex HMAC-SHA256 of the raw body Marqeta sends in `X-Marqeta-Signature`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(*, body: bytes, signature: str, secret: str) -> None:
    """Constant-time check of the signature header; `BadSignature` (403) when it differs."""
    given = signature.strip().lower().encode("utf-8", "replace")
    wanted = expected_signature(body=body, secret=secret).encode()
    if not given or not hmac.compare_digest(given, wanted):
        raise BadSignature("X-Marqeta-Signature is missing or does not match the body")


def decimals_as_strings(value: Any) -> Any:
    """The parsed JSON with every Decimal written back as its decimal string (JSON-safe)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: decimals_as_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decimals_as_strings(item) for item in value]
    return value


def _text(container: dict[str, Any], name: str, *, limit: int = 255) -> str:
    value = container.get(name)
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | Decimal | str):
        value = str(value)  # tokens and codes may arrive as numbers [seen]
        return value if len(value) <= limit else ""
    return ""


def _object(container: dict[str, Any], name: str) -> dict[str, Any]:
    value = container.get(name)
    return value if isinstance(value, dict) else {}


def _gpa_order(raw: dict[str, Any]) -> dict[str, Any]:
    """`gpa_order`, or `gpa_order_unload` for refunds and credits (§2.3)."""
    return _object(raw, "gpa_order") or _object(raw, "gpa_order_unload")


def _jit_funding(raw: dict[str, Any]) -> dict[str, Any]:
    for container in ("gpa_order", "gpa_order_unload"):
        funding = _object(_object(raw, container), "jit_funding")
        if funding:
            return funding
    return {}


@dataclass(frozen=True, slots=True)
class EnvelopeEvent:
    """One event of an envelope, ready to be stored."""

    token: str
    category: str
    event_type: str
    state: str
    card_token: str
    user_token: str
    preceding_token: str
    raw: dict[str, Any]

    @property
    def is_recorded_only(self) -> bool:
        """Stored for the record, never applied: pings, other categories, companion events."""
        return self.category != TRANSACTIONS or is_companion(self.event_type)


def is_companion(event_type: str) -> bool:
    """`gpa.credit.authorization(.reversal)`: the funding leg of a card transaction (§7.4)."""
    return event_type.startswith("gpa.credit")


def _storage_token(category: str, raw: dict[str, Any]) -> str:
    token = _text(raw, "token", limit=TOKEN_MAX)
    if not token:  # no usable token: key it by its content, so a retry still dedupes
        canonical = simplejson.dumps(raw, sort_keys=True, separators=(",", ":"))
        token = "sha256-" + hashlib.sha256(canonical.encode()).hexdigest()
        return f"{category}:{token}"
    return token if category == TRANSACTIONS else f"{category}:{token}"


def _event(category: str, raw: dict[str, Any]) -> EnvelopeEvent:
    funding = _jit_funding(raw)
    return EnvelopeEvent(
        token=_storage_token(category, raw),
        category=category,
        event_type=_text(raw, "type", limit=80) or _text(raw, "event_type", limit=80),
        state=_text(raw, "state", limit=20),
        card_token=_text(raw, "card_token", limit=64),
        user_token=_text(raw, "user_token", limit=64) or _text(funding, "user_token", limit=64),
        preceding_token=_text(raw, "preceding_related_transaction_token", limit=64),
        raw=decimals_as_strings(raw),
    )


def _refuse_unstorable(document: Any) -> None:
    """`MalformedWebhook` for what the event table cannot hold or our walks cannot recurse
    into: a NUL or an unpaired surrogate in any key or string (PostgreSQL refuses them),
    nesting deeper than MAX_DEPTH. Iterative, so a deep body cannot exhaust the stack here."""
    pending = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise MalformedWebhook(f"the body nests deeper than {MAX_DEPTH} levels")
        texts = [value] if isinstance(value, str) else []
        if isinstance(value, dict):
            texts = list(value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        if not all(is_storable(text) for text in texts):
            raise MalformedWebhook("the body holds a NUL or an unpaired surrogate")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The events of one POST, each token once, and how many the body carried."""

    events: list[EnvelopeEvent]
    count: int  # repeats included


def parse_envelope(body: bytes) -> Envelope:
    """`{"transactions": [...], "cards": [...], "pings": [...]}` -> its events, in order.

    Each key is a category holding an array of objects (§7.2). An event repeated inside one
    envelope is kept once. Anything else is `MalformedWebhook` (400) and nothing is stored.
    """
    try:
        document = simplejson.loads(body, use_decimal=True)
    except (ValueError, RecursionError, UnicodeDecodeError) as error:
        raise MalformedWebhook(f"the body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise MalformedWebhook("the body must be a JSON object of event arrays")
    _refuse_unstorable(document)
    events: dict[str, EnvelopeEvent] = {}
    count = 0
    for category, items in document.items():
        if not CATEGORY_RE.match(category):
            raise MalformedWebhook(f"{category[:40]!r} is not an event category", field=category)
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise MalformedWebhook(f"{category} must be an array of objects", field=category)
        for item in items:
            event = _event(category, item)
            events.setdefault(event.token, event)
            count += 1
    return Envelope(events=list(events.values()), count=count)


@dataclass(frozen=True, slots=True)
class MarqetaTransaction:
    """The fields reconciliation reads from a stored `transactions` event (strings only)."""

    token: str
    type: str
    state: str
    user_token: str
    card_token: str
    currency_code: str
    amount: str
    preceding_token: str
    jit_token: str
    jit_method: str
    jit_amount: str
    original_jit_token: str
    is_final_clearing: bool
    amount_to_be_released: str
    timed_out: bool
    gateway_response_code: str
    standin_by: str
    subnetwork: str
    mcc: str
    merchant_name: str
    created_time: datetime | None

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> MarqetaTransaction:
        funding, order = _jit_funding(raw), _gpa_order(raw)
        gateway_log = _object(_object(order, "funding"), "gateway_log")
        acceptor = _object(raw, "card_acceptor")
        created = _text(raw, "user_transaction_time") or _text(raw, "created_time")
        return cls(
            token=_text(raw, "token", limit=TOKEN_MAX),
            type=_text(raw, "type", limit=80),
            state=_text(raw, "state", limit=20).upper(),
            user_token=_text(funding, "user_token", limit=36) or _text(raw, "user_token", limit=36),
            card_token=_text(raw, "card_token", limit=36),
            currency_code=_text(raw, "currency_code", limit=3) or _text(order, "currency_code"),
            amount=_text(raw, "amount", limit=40),
            preceding_token=_text(raw, "preceding_related_transaction_token", limit=TOKEN_MAX),
            jit_token=_text(funding, "token", limit=36),
            jit_method=_text(funding, "method", limit=80),
            jit_amount=_text(funding, "amount", limit=40),
            original_jit_token=_text(funding, "original_jit_funding_token", limit=36),
            is_final_clearing=raw.get("is_final_clearing") is not False,  # absent: final
            amount_to_be_released=_text(raw, "amount_to_be_released", limit=40),
            timed_out=gateway_log.get("timed_out") is True,
            gateway_response_code=_text(_object(gateway_log, "response"), "code", limit=10),
            standin_by=_text(raw, "standin_approved_by", limit=40)
            or _text(raw, "standin_by", limit=40),
            subnetwork=_text(raw, "subnetwork", limit=40),
            mcc=_text(acceptor, "mcc", limit=4),
            merchant_name=_text(acceptor, "name")[:100],
            created_time=parse_datetime(created) if created else None,
        )

    @property
    def is_approved(self) -> bool:
        return self.state in APPROVED_STATES

    @property
    def has_parent_link(self) -> bool:
        """A follow-up names what it follows; a force post names nothing (§11 Example 7)."""
        return bool(self.preceding_token or self.original_jit_token)

    @property
    def standin_signs(self) -> list[str]:
        """Why we believe Marqeta (or the network) approved without us (§5.1)."""
        signs = []
        if self.standin_by:
            signs.append(f"standin_by={self.standin_by}")
        if self.subnetwork == STANDIN_SUBNETWORK:
            signs.append(f"subnetwork={STANDIN_SUBNETWORK}")
        if self.timed_out:
            signs.append("gateway_log.timed_out")
        if self.type.endswith(".standin"):
            signs.append(f"type={self.type}")
        return signs

    def funding_amount_minor(self, currency_code: str) -> int:
        """`jit_funding.amount` (what Marqeta says to act on), else the top-level `amount`."""
        return to_minor(self.jit_amount or self.amount or "", currency_code)

    def released_minor(self, currency_code: str) -> int | None:
        """`amount_to_be_released` on a final clearing, when Marqeta sent it."""
        if not self.amount_to_be_released:
            return None
        return to_minor(self.amount_to_be_released, currency_code)
