"""Marqeta's shapes: the transaction object of JIT funding requests and of webhooks.

Every builder returns plain dicts with `Decimal` amounts, rendered as JSON numbers with two
decimals (`150.00`) by `dumps`, as Marqeta sends them. Field names and values follow MARQETA.md
§2 (request), §4.8 (`gateway_log`), §5.1 (stand-in), §6 (types and states), §7 (envelopes) and
Examples 1-7; `[unsure]` marks a value MARQETA.md does not pin down either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import simplejson

from jit.simulator.merchants import ATM, CONVERSION_RATES, ECOMMERCE, Merchant
from ledger.money import to_decimal

APPROVED = {"code": "0000", "memo": "Approved or completed successfully"}
# MARQETA.md §4.2: the seven documented decline codes; the others are not documented [unsure]
DECLINE_RESPONSES = {
    "INVALID_AMOUNT": ("1883", "JIT response invalid amount"),
    "INSUFFICIENT_FUNDS": ("1884", "JIT response not sufficient funds"),
    "TRANSACTION_NOT_PERMITTED": ("1885", "JIT response transaction not permitted"),
    "SUSPECTED_FRAUD": ("1886", "JIT response suspected fraud"),
    "AMOUNT_LIMIT_EXCEEDED": ("1887", "JIT response amount limit reached"),
    "TRANSACTION_COUNT_LIMIT_EXCEEDED": ("1888", "JIT response usage limit reached"),
    "DUPLICATE_TRANSACTION": ("1889", "JIT response duplicate entry"),
}
GATEWAY_DECLINE = {"code": "1016", "memo": "Not sufficient funds"}  # §4.3: no reason given
LOAD_FAILED = {"code": "1842", "memo": "Account load failed"}  # §4.3 [seen]
GATEWAY_MESSAGES = {
    "approved": "Approved or completed successfully",
    "declined": "Declined by gateway.",
    "timeout": "Operation timeout",
}
SUBNETWORKS = {
    ("VISA", "purchase"): "VISANET",
    ("VISA", "atm"): "VISAPLUS",
    ("VISA", "pin"): "VISAINTERLINK",
    ("MASTERCARD", "purchase"): "MASTERCARDDEBIT",
    ("MASTERCARD", "atm"): "CIRRUS",
    ("MASTERCARD", "pin"): "MAESTRO",
}
GATEWAY_JIT, MANAGED_JIT = "GATEWAY_JIT", "MANAGED_JIT"


def mask(token: str) -> str:
    """Funding-source tokens arrive masked, the last four shown (`**********main`) [seen]."""
    return "*" * 10 + token[-4:]


def dumps(document: Any) -> bytes:
    """JSON as Marqeta sends it: `Decimal` amounts as numbers, never through a float."""
    return simplejson.dumps(document, use_decimal=True, separators=(",", ":")).encode()


def envelope(transactions: list[dict[str, Any]]) -> bytes:
    """A webhook POST body (MARQETA.md §7.2): one category key holding the events."""
    return dumps({"transactions": transactions})


@dataclass(frozen=True, slots=True)
class SimCard:
    """A card the simulator uses, as Marqeta knows it."""

    index: int
    user_token: str
    card_token: str
    last_four: str
    currency_code: str
    program: str
    network: str  # VISA | MASTERCARD
    street_address: str
    postal_code: str


@dataclass(slots=True)
class Facts:
    """What every message of one purchase shares: card, merchant, network references."""

    card: SimCard
    merchant: Merchant
    funding_source_token: str
    network_reference_id: str
    approval_code: str
    acquirer_reference_data: str
    retrieval_reference_number: str
    stan: str
    user_transaction_time: str
    kind: str = "purchase"  # purchase | atm | pin
    cvv_code: str = "0000"
    avs_code: str = "0000"
    risk: str = "LOW"
    risk_scores: tuple[int, int] = (12, 3)
    is_recurring: bool = False

    @property
    def currency_code(self) -> str:
        return self.card.currency_code

    @property
    def network(self) -> str:
        return self.card.network

    @property
    def subnetwork(self) -> str:
        return SUBNETWORKS[(self.card.network, self.kind)]

    def money(self, amount_minor: int) -> Decimal:
        return to_decimal(amount_minor, self.currency_code)


@dataclass(slots=True)
class Message:
    """One Marqeta transaction (a JIT message or a webhook-only event)."""

    token: str
    jit_token: str
    order_token: str  # gpa_order.token
    type: str
    method: str
    amount_minor: int  # jit_funding.amount: what this message funds
    created_time: str
    state: str = "PENDING"
    total_minor: int | None = None  # top-level amount when it differs (advices: the new total)
    preceding: str = ""
    original_jit: str = ""
    incremental_txns: list[str] = field(default_factory=list)
    incremental_jits: list[str] = field(default_factory=list)
    unload: bool = False  # refunds and credits come in gpa_order_unload [seen]

    @property
    def top_amount_minor(self) -> int:
        return self.amount_minor if self.total_minor is None else self.total_minor


def _jit_funding(facts: Facts, message: Message, *, with_avs: bool) -> dict[str, Any]:
    funding: dict[str, Any] = {
        "token": message.jit_token,
        "method": message.method,
        "user_token": facts.card.user_token,
        "acting_user_token": facts.card.user_token,
        "amount": facts.money(message.amount_minor),
    }
    if message.original_jit:
        funding["original_jit_funding_token"] = message.original_jit
    if message.incremental_jits:
        funding["incremental_authorization_jit_funding_tokens"] = list(message.incremental_jits)
    if with_avs and facts.kind == "purchase":
        funding["address_verification"] = {
            "request": {"postal_code": facts.card.postal_code},
            "issuer": {
                "on_file": {
                    "street_address": facts.card.street_address,
                    "postal_code": facts.card.postal_code,
                },
                "response": {"code": facts.avs_code, "memo": _avs_memo(facts.avs_code)},
            },
        }
    return funding


def _avs_memo(code: str) -> str:
    return {
        "0000": "Address and postal code match",
        "0200": "Address absent, postal code match",
        "0101": "Address and postal code do not match",
    }.get(code, "Not validated")  # [unsure] the memo texts


FUNDING_SOURCE_CREATED = "2026-01-10T09:00:00Z"  # when the program's gateway was registered


def _funding_source(facts: Facts, *, with_times: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = {
        "type": "programgateway",
        "token": mask(facts.funding_source_token),
        "active": True,
        "name": "Program gateway",
        "is_default_account": False,
    }
    if with_times:  # on requests (Example 1)
        source["created_time"] = source["last_modified_time"] = FUNDING_SOURCE_CREATED
    return source


def _pos(facts: Facts, message: Message) -> dict[str, Any]:
    merchant = facts.merchant
    if merchant.channel == ECOMMERCE:
        return {
            "pan_entry_mode": "KEY_ENTRY",
            "pin_entry_mode": "FALSE",
            "terminal_attendance": "UNATTENDED",
            "terminal_location": "OFF_PREMISE_CARDHOLDER",
            "card_holder_presence": False,
            "card_presence": False,
            "partial_approval_capable": False,
            "purchase_amount_only": True,
            "is_recurring": facts.is_recurring,
        }
    if message.type == "authorization.incremental":  # Example 4: the card is gone by now
        return {
            "pan_entry_mode": "OTHER",
            "card_holder_presence": False,
            "card_presence": False,
            "partial_approval_capable": False,
        }
    pin = facts.kind in ("atm", "pin")
    return {
        "pan_entry_mode": "CHIP_CONTACTLESS" if not pin else "CHIP",
        "pin_entry_mode": "TRUE" if pin else "FALSE",
        "pin_present": pin,
        "terminal_id": f"TR{merchant.mid[-6:]}",
        "terminal_attendance": "UNATTENDED" if merchant.channel == ATM else "ATTENDED",
        "terminal_location": "ON_PREMISE",
        "card_holder_presence": True,
        "card_presence": True,
        "card_data_input_capability": "CHIP_CONTACTLESS",
        "partial_approval_capable": False,
        "purchase_amount_only": merchant.channel != ATM,
        "is_recurring": False,
    }


def _metadata(facts: Facts) -> dict[str, Any]:
    merchant = facts.merchant
    channel = {ECOMMERCE: "ECOMMERCE", ATM: "ATM"}.get(merchant.channel, "OTHER")
    metadata: dict[str, Any] = {"payment_channel": channel}
    if merchant.mcc in ("7011", "7512"):
        metadata["is_lodging_auto_rental"] = True
    if merchant.is_foreign:
        metadata["cross_border_transaction"] = True
    if facts.is_recurring:
        metadata["is_recurring"] = True
    return metadata


def _conversion(facts: Facts, amount_minor: int) -> dict[str, Any] | None:
    numeric = facts.merchant.currency_numeric
    if not numeric:
        return None
    rate = Decimal(CONVERSION_RATES[numeric])
    original = (facts.money(amount_minor) * rate).quantize(Decimal("0.01"))
    return {
        "network": {
            "original_amount": original,
            "conversion_rate": rate,
            "original_currency_code": numeric,  # numeric [seen]
            "dynamic_currency_conversion": False,
        }
    }


def _gpa(facts: Facts, *, impacted_minor: int | None = None) -> dict[str, Any]:
    zero = facts.money(0)
    gpa: dict[str, Any] = {
        "currency_code": facts.currency_code,
        "ledger_balance": zero,  # with JIT Marqeta's own balance stays at 0 [seen]
        "available_balance": zero,
        "credit_balance": zero,
        "pending_credits": zero,
    }
    if impacted_minor is not None:
        gpa["impacted_amount"] = facts.money(impacted_minor)
    else:
        gpa["balances"] = {
            facts.currency_code: {
                "currency_code": facts.currency_code,
                "ledger_balance": zero,
                "available_balance": zero,
                "credit_balance": zero,
                "pending_credits": zero,
            }
        }
    return gpa


def _common(facts: Facts, message: Message) -> dict[str, Any]:
    """The top-level fields every transaction object carries."""
    card, merchant = facts.card, facts.merchant
    amount = facts.money(message.top_amount_minor)
    body: dict[str, Any] = {
        "type": message.type,
        "state": message.state,
        "token": message.token,
        "user_token": card.user_token,
        "acting_user_token": card.user_token,
        "card_token": card.card_token,
        "card_product_token": f"{card.program}_debit",
        "amount": amount,
        "request_amount": amount,
        "currency_code": card.currency_code,
        "network": facts.network,
        "subnetwork": facts.subnetwork,
        "network_reference_id": facts.network_reference_id,
        "created_time": message.created_time,
        "user_transaction_time": facts.user_transaction_time,
        "settlement_date": message.created_time[:10] + "T00:00:00Z",
        "card_acceptor": merchant.card_acceptor(),
    }
    if message.preceding:
        body["preceding_related_transaction_token"] = message.preceding
    if message.incremental_txns:
        body["incremental_authorization_transaction_tokens"] = list(message.incremental_txns)
    if conversion := _conversion(facts, message.top_amount_minor):
        body["currency_conversion"] = conversion
    return body


def _card(facts: Facts) -> dict[str, Any]:
    return {"last_four": facts.card.last_four, "metadata": {}}


# --- JIT funding requests (Marqeta -> POST /jit/marqeta/) -------------------------------------


def jit_request(facts: Facts, message: Message) -> dict[str, Any]:
    """A JIT funding request: the whole transaction, `gpa_order.jit_funding` inside (Example 1)."""
    body = _common(facts, message)
    body.update(
        issuer_received_time=message.created_time.replace("Z", ".204Z"),
        is_preauthorization=facts.merchant.incremental,
        acquirer={
            "institution_id_code": "428399181",
            "retrieval_reference_number": facts.retrieval_reference_number,
            "system_trace_audit_number": facts.stan,
        },
        pos=_pos(facts, message),
        transaction_metadata=_metadata(facts),
        fraud={
            "network": {
                "transaction_risk_score": facts.risk_scores[0],
                "account_risk_score": facts.risk_scores[1],
            },
            "issuer_processor": {
                "score": str(facts.risk_scores[0] // 2),
                "risk_level": facts.risk,
                "recommended_action": "APPROVE" if facts.risk == "LOW" else "REVIEW",
                "rule_violations": [],
            },
        },
        gpa=_gpa(facts),
        user={"metadata": {}},
        card=_card(facts),
    )
    if facts.kind == "purchase" and message.type != "authorization.incremental":
        cvv_type = "CVV2" if facts.merchant.channel == ECOMMERCE else "ICVV"
        matched = facts.cvv_code == "0000"
        body["card_security_code_verification"] = {
            "type": cvv_type,
            "response": {
                "code": facts.cvv_code,
                "memo": "Card security code match" if matched else "Card security code mismatch",
            },
        }
    amount = facts.money(message.amount_minor)
    body["gpa_order"] = {
        "token": message.order_token,
        "amount": amount,
        "currency_code": facts.currency_code,
        "state": "PENDING",
        "transaction_token": "gpt" + message.order_token[3:],
        "user_token": facts.card.user_token,
        "funding_source_token": mask(facts.funding_source_token),
        "funding": {"amount": amount, "source": _funding_source(facts, with_times=True)},
        "jit_funding": _jit_funding(facts, message, with_avs=True),
    }
    return body


# --- webhooks (Marqeta -> POST /webhooks/marqeta/) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayOutcome:
    """How Marqeta saw our answer to one JIT message (what `gateway_log` records, §4.8)."""

    duration_ms: int
    timed_out: bool
    status: int | None  # our HTTP status; None when nothing came back
    response: dict[str, Any] | None  # our body as Marqeta stored it

    def log(self, message: Message) -> dict[str, Any]:
        gateway_log: dict[str, Any] = {
            "order_number": message.token,
            "transaction_id": message.jit_token,
            "duration": self.duration_ms,
            "timed_out": self.timed_out,
        }
        if self.timed_out or self.status is None:
            gateway_log["message"] = GATEWAY_MESSAGES["timeout"]  # our late answer is ignored
            return gateway_log
        gateway_log["message"] = GATEWAY_MESSAGES["approved" if self.status == 200 else "declined"]
        gateway_log["response"] = {"code": str(self.status), "data": self.response or {}}
        return gateway_log


@dataclass(frozen=True, slots=True)
class MarqetaOutcome:
    """What Marqeta finally did with an authorization message."""

    approved: bool
    decline_reason: str = ""  # ours, when we declined in time
    standin_by: str = ""  # COMMANDO_AUTO | NETWORK when Marqeta or the network stood in
    standin_reason: str = ""


def _response_for(outcome: MarqetaOutcome, gateway: GatewayOutcome | None) -> dict[str, str]:
    if outcome.approved:
        return dict(APPROVED)
    if outcome.decline_reason in DECLINE_RESPONSES:
        code, memo = DECLINE_RESPONSES[outcome.decline_reason]
        return {"code": code, "memo": memo}
    if gateway is not None and gateway.status not in (200, 402):
        return dict(LOAD_FAILED)
    return dict(GATEWAY_DECLINE)  # a timeout or a 402 without a reason [unsure]


def authorization_event(
    facts: Facts,
    message: Message,
    *,
    outcome: MarqetaOutcome,
    gateway: GatewayOutcome | None,
) -> dict[str, Any]:
    """The authorization notification: Marqeta's final word, our answer echoed in `gateway_log`.

    Declined: `state: DECLINED`. A stand-in approval names who stood in (`standin_approved_by`,
    `standin_by`), and Commando Mode runs on `subnetwork: MANAGED_JIT` (§5.1).
    """
    body = _common(facts, message)
    body["issuer_received_time"] = message.created_time.replace("Z", ".204Z")
    body["is_preauthorization"] = facts.merchant.incremental
    captured = message.state == "COMPLETION"  # single-message PIN debit
    body["state"] = ("COMPLETION" if captured else "PENDING") if outcome.approved else "DECLINED"
    if message.type != "authorization.standin":
        body["subnetwork"] = GATEWAY_JIT
    response = _response_for(outcome, gateway)
    body["response"] = response
    if outcome.approved:
        body["approval_code"] = facts.approval_code
    if outcome.standin_by:
        body["standin_approved_by"] = outcome.standin_by
        body["standin_by"] = outcome.standin_by
        body["standin_reason"] = outcome.standin_reason
        if outcome.standin_by.startswith("COMMANDO"):
            body["subnetwork"] = MANAGED_JIT
    body["transaction_metadata"] = _metadata(facts)
    body["gpa"] = _gpa(facts, impacted_minor=-message.amount_minor if outcome.approved else 0)
    amount = facts.money(message.amount_minor)
    funding: dict[str, Any] = {"amount": amount, "source": _funding_source(facts)}
    if gateway is not None:
        funding["gateway_log"] = gateway.log(message)
    body["gpa_order"] = {
        "token": message.order_token,
        "amount": amount,
        "currency_code": facts.currency_code,
        "state": ("COMPLETION" if captured else "PENDING") if outcome.approved else "DECLINED",
        "transaction_token": "gpt" + message.order_token[3:],
        "user_token": facts.card.user_token,
        "funding_source_token": mask(facts.funding_source_token),
        "response": dict(APPROVED) if outcome.approved else dict(LOAD_FAILED),
        "funding": funding,
        "jit_funding": _jit_funding(facts, message, with_avs=False),
    }
    if gateway is not None and gateway.response and not gateway.timed_out:
        jit = gateway.response.get("jit_funding", {})
        for name in ("tags", "memo"):
            if name in jit:
                body["gpa_order"][name] = jit[name]
    body["card"] = _card(facts)
    return body


def follow_up_event(
    facts: Facts,
    message: Message,
    *,
    impacted_minor: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A webhook-only transaction: reversal, advice, expiry, clearing, force post, refund.

    `impacted_minor` is `gpa.impacted_amount` (negative on a charge, positive on a refund, §6.5).
    """
    body = _common(facts, message)
    body["response"] = dict(APPROVED)
    if message.type not in ("refund",) and message.preceding:
        body["approval_code"] = facts.approval_code
    body["gpa"] = _gpa(facts, impacted_minor=impacted_minor)
    amount = facts.money(message.amount_minor)
    order_state = {"CLEARED": "REVERSED"}.get(message.state, message.state)  # Example 5
    order: dict[str, Any] = {
        "token": message.order_token,
        "amount": amount,
        "currency_code": facts.currency_code,
        "state": order_state,
        "transaction_token": "gpt" + message.order_token[3:],
        "funding_source_token": mask(facts.funding_source_token),
        "response": dict(APPROVED),
        "jit_funding": _jit_funding(facts, message, with_avs=False),
    }
    if not message.unload:
        order["funding"] = {"amount": amount, "source": _funding_source(facts)}
    body["gpa_order_unload" if message.unload else "gpa_order"] = order
    body.update(extra or {})
    return body


def clearing_fields(
    facts: Facts,
    *,
    is_final: bool | None,
    released_minor: int | None,
    sequence: tuple[int, int] | None,
    record_number: str,
    batch_number: str,
    interchange_minor: int,
) -> dict[str, Any]:
    """What a clearing adds (Example 6): finality, sequence, network keys, fees."""
    fields: dict[str, Any] = {
        "clearing_record_sequence_number": record_number,
        "approval_code": facts.approval_code,
        "acquirer_reference_data": facts.acquirer_reference_data,
        "batch_number": batch_number,
        "fees": [
            {
                "type": "INTERCHANGE_FEE",
                "amount": facts.money(interchange_minor),
                "credit_debit": "C",
            }
        ],
    }
    if is_final is not None:
        fields["is_final_clearing"] = is_final
    if released_minor is not None:
        fields["amount_to_be_released"] = facts.money(released_minor)
    if sequence is not None:
        fields["multi_clearing_sequence_number"] = f"{sequence[0]:02d}"
        fields["multi_clearing_sequence_count"] = f"{sequence[1]:02d}"
    return fields


def companion_event(facts: Facts, message: Message, *, token: str) -> dict[str, Any]:
    """`gpa.credit.authorization(.reversal)`: the funding leg of a card transaction (§1, §7.4)."""
    reversal = "reversal" in message.method
    amount = facts.money(message.amount_minor)
    return {
        "type": "gpa.credit.authorization" + (".reversal" if reversal else ""),
        "state": "COMPLETION",
        "token": token,
        "user_token": facts.card.user_token,
        "amount": amount,
        "currency_code": facts.currency_code,
        "created_time": message.created_time,
        "preceding_related_transaction_token": message.token,
        "gpa": _gpa(
            facts, impacted_minor=-message.amount_minor if reversal else message.amount_minor
        ),
        "gpa_order": {
            "token": message.order_token,
            "amount": amount,
            "currency_code": facts.currency_code,
            "state": "COMPLETION",
            "jit_funding": _jit_funding(facts, message, with_avs=False),
        },
    }


def balance_inquiry_event(facts: Facts, message: Message, *, answered: bool) -> dict[str, Any]:
    """The notification of a balance inquiry (nothing to post) [unsure: its state]."""
    body = _common(facts, message)
    body["state"] = "COMPLETION" if answered else "DECLINED"
    body["response"] = dict(APPROVED) if answered else dict(LOAD_FAILED)
    body["gpa"] = _gpa(facts, impacted_minor=0)
    body["card"] = _card(facts)
    return body
