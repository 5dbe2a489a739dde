"""Our reason codes in plain words, for support (card history, admin)."""

from __future__ import annotations

from ledger.money import format_money

WORDS = {
    "APPROVED": "approved",
    "BALANCE": "insufficient funds",
    "MAX_TRANSACTION_AMOUNT": "over the per-transaction maximum",
    "CHANNEL_NOT_ALLOWED": "channel not allowed",
    "MCC_BLOCKED": "merchant category blocked",
    "MCC_NOT_ALLOWED": "merchant category not on the allow list",
    "COUNTRY_BLOCKED": "merchant country blocked",
    "CURRENCY_MISMATCH": "currency differs from the account",
    "CARD_SUSPENDED": "card suspended",
    "CARD_TERMINATED": "card terminated",
    "CARDHOLDER_SUSPENDED": "cardholder suspended",
    "CARDHOLDER_CLOSED": "cardholder closed",
    "CARD_NOT_IN_CACHE": "card unknown to the gateway",
    "ACCOUNT_NOT_IN_CACHE": "account unknown to the gateway",
    "OCT_NOT_ENABLED": "original credit transactions are not enabled",
    "UNKNOWN_METHOD": "unknown funding method",
    "FALLBACK_APPROVED": "approved by the stand-in policy",
    "FALLBACK_DECLINE_ALL": "stand-in policy declines everything",
    "FALLBACK_OVER_TRANSACTION_LIMIT": "over the stand-in per-transaction limit",
    "FALLBACK_OVER_DAILY_LIMIT": "over the stand-in daily limit",
    "FALLBACK_MCC_NOT_ALLOWED": "merchant category not allowed by the stand-in policy",
}
WINDOW_WORDS = {"DAY": "daily", "WEEK": "weekly", "MONTH": "monthly", "LIFETIME": "lifetime"}


def _limit_room(limits_left: str, window: str, measure: str, currency: str) -> str:
    """ ", 20.00 of 500.00 remaining" for the tightest limit of that window and measure."""
    rooms = []
    for item in filter(None, limits_left.split(",")):
        limit_id, _, values = item.partition("=")
        amount_left, max_amount, count_left, max_count = values.split("/")
        if not limit_id.endswith(f":{window.lower()}"):
            continue
        left, maximum = (
            (amount_left, max_amount) if measure == "AMOUNT" else (count_left, max_count)
        )
        if left != "-":
            rooms.append((int(left), int(maximum)))
    if not rooms:
        return ""
    left, maximum = min(rooms)
    if measure == "AMOUNT":
        left_text, maximum_text = (
            format_money(max(left, 0), currency),
            format_money(maximum, currency),
        )
        return f", {left_text} of {maximum_text} remaining"
    return f", {max(left, 0)} of {maximum} transactions remaining"


def in_words(*, reason_code: str, limits_left: str = "", currency_code: str = "USD") -> str:
    """ "declined: daily spend limit, 20.00 USD of 500.00 USD remaining" style explanations."""
    if reason_code.startswith("VELOCITY_"):
        _, window, measure = reason_code.split("_")
        what = "spend limit" if measure == "AMOUNT" else "transaction count limit"
        room = _limit_room(limits_left, window, measure, currency_code)
        return f"{WINDOW_WORDS.get(window, window.lower())} {what}{room}"
    if reason_code.startswith("FRAUD_"):
        return f"fraud rule: {reason_code.removeprefix('FRAUD_').lower().replace('_', ' ')}"
    return WORDS.get(reason_code, reason_code.lower().replace("_", " "))
