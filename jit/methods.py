"""`jit_funding.method` -> what the gateway does with it (MARQETA.md §3 and §10).

Decision methods are decided; advices (Marqeta will not take them back) are acknowledged with
200 and applied to the cached balance; unknown methods are answered in time and logged loudly.
"""

from __future__ import annotations

from enum import StrEnum


class Op(StrEnum):
    """What the Lua script does (its ARGV[3])."""

    AUTH = "auth"  # decide; approve places a hold
    VERIFY = "verify"  # decide on card state only; no hold
    INQUIRY = "inquiry"  # answer with balances
    DENY = "deny"  # refused by policy before the script (recorded like any decline)
    STANDIN = "standin"  # the network approved without us: hold, may overdraw
    RELEASE = "release"  # reversal advice: release (part of) the hold
    CLEAR = "clear"  # clearing advice with an authorization
    FORCE = "force"  # charge with no authorization (force capture, debits)
    CREDIT = "credit"  # money back to the cardholder (refunds, credits)
    ADVICE = "advice"  # recorded only


AUTH_METHODS = {
    "pgfs.authorization",
    "pgfs.authorization.incremental",
    "pgfs.auth_plus_capture",
    "pgfs.authorization.quasi.cash",
    "pgfs.authorization.cashback",
    "pgfs.atm.withdrawal",
    "pgfs.billpayment",
    "pgfs.network.load",
    "pgfs.pindebit",
    "pgfs.pindebit.authorization",
    "pgfs.pindebit.atm.withdrawal",
    "pgfs.pindebit.cashback",
    "pgfs.pindebit.quasi.cash",
}
CAPTURED_AT_ONCE = {"pgfs.auth_plus_capture", "pgfs.pindebit"}  # single-message: no clearing
INQUIRY_METHODS = {"pgfs.balanceinquiry", "pgfs.pindebit.balanceinquiry"}
VERIFY_METHODS = {"pgfs.authorization.account_verification", "pgfs.refund.authorization"}
OCT_METHODS = {"pgfs.original.credit.authorization", "pgfs.original.credit.auth_plus_capture"}
STANDIN_METHODS = {"pgfs.authorization.standin", "pgfs.auth_plus_capture.standin"}
RELEASE_METHODS = {
    "pgfs.authorization.reversal",
    "pgfs.pindebit.authorization.reversal",
    "pgfs.billpayment.reversal",
}
CLEAR_METHODS = {
    "pgfs.authorization.capture",
    "pgfs.authorization.clearing",
    "pgfs.pindebit.authorization.clearing",
    "pgfs.billpayment.capture",
    "pgfs.atm.clearing.withdrawal",
    "pgfs.authorization.clearing.quasi.cash",
}
FORCE_METHODS = {
    "pgfs.force_capture",
    "pgfs.dispute.debit",
    "pgfs.adjustment.debit",
    "pgfs.directdeposit.debit",
    "pgfs.directdeposit.credit.reversal",
    "pgfs.authorization.capture.chargeback.reversal",
    "pgfs.pindebit.chargeback.reversal",
}
CREDIT_METHODS = {
    "pgfs.refund",
    "pgfs.refund.authorization.clearing",
    "pgfs.pindebit.refund",
    "pgfs.original.credit.authorization.clearing",
    "pgfs.dispute.credit",
    "pgfs.adjustment.credit",
    "pgfs.directdeposit.credit",
    "pgfs.directdeposit.debit.reversal",
    "pgfs.authorization.capture.chargeback",
    "pgfs.pindebit.chargeback",
}
RECORD_ONLY_METHODS = {
    "pgfs.authorization.advice",
    "pgfs.refund.authorization.reversal",
    "pgfs.original.credit.authorization.reversal",
}
ADVICE_WORDS = ("clearing", "capture", "reversal", "refund", "standin", "chargeback", "adjustment")


def classify(method: str, *, amount_minor: int, has_original: bool) -> tuple[Op, str]:
    """The op for a method, and our reason code when the op is a policy refusal."""
    if method in AUTH_METHODS:
        return Op.AUTH, ""
    if method in VERIFY_METHODS:
        return (Op.VERIFY if amount_minor == 0 or "refund" in method else Op.AUTH), ""
    if method in INQUIRY_METHODS:
        return Op.INQUIRY, ""
    if method == "pgfs.product.inquiry":
        return (Op.VERIFY, "") if amount_minor == 0 else (Op.DENY, "PRODUCT_INQUIRY_AMOUNT")
    if method in OCT_METHODS:
        return Op.DENY, "OCT_NOT_ENABLED"
    return _classify_advice(method, has_original=has_original)


def _classify_advice(method: str, *, has_original: bool) -> tuple[Op, str]:
    if method in STANDIN_METHODS:
        return Op.STANDIN, ""
    if method in RELEASE_METHODS:
        return Op.RELEASE, ""
    if method in CLEAR_METHODS:
        return (Op.CLEAR if has_original else Op.FORCE), ""
    if method in FORCE_METHODS:
        return Op.FORCE, ""
    if method in CREDIT_METHODS:
        return Op.CREDIT, ""
    if method in RECORD_ONLY_METHODS or any(word in method for word in ADVICE_WORDS):
        return Op.ADVICE, "" if method in RECORD_ONLY_METHODS else "UNKNOWN_ADVICE_METHOD"
    return Op.DENY, "UNKNOWN_METHOD"


def is_advice(op: Op) -> bool:
    """Advices are always answered 200: Marqeta has already done them."""
    return op in {Op.STANDIN, Op.RELEASE, Op.CLEAR, Op.FORCE, Op.CREDIT, Op.ADVICE}
