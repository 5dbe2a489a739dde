"""Ledger refusals, each with a stable code."""

from config.errors import DomainError, IdempotencyConflict, InvalidAmount, NotFound

__all__ = [
    "AdjustmentNotPending",
    "CurrencyMismatch",
    "DomainError",
    "HoldNotFound",
    "HoldOfAnotherWallet",
    "HoldNotOpen",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidAmount",
    "ReasonRequired",
    "SelfApprovalRefused",
    "UnbalancedTransaction",
]


class UnbalancedTransaction(DomainError):
    """Signed lines of a transaction must sum to zero per currency."""

    code = "unbalanced_transaction"


class InsufficientFunds(DomainError):
    """The posting would take an available balance below zero and may not overdraw."""

    code = "INSUFFICIENT_FUNDS"
    http_status = 422


class CurrencyMismatch(DomainError):
    """An amount in one currency posted to an account in another."""

    code = "currency_mismatch"


class HoldNotFound(NotFound):
    """No hold with that key."""

    code = "hold_not_found"


class HoldNotOpen(DomainError):
    """The hold is already closed or expired, so there is nothing left to release."""

    code = "hold_not_open"
    http_status = 409


class SelfApprovalRefused(DomainError):
    """Maker-checker: the person who proposed an adjustment cannot approve it."""

    code = "self_approval_refused"
    http_status = 403


class ReasonRequired(DomainError):
    """A person's change to money must say why."""

    code = "reason_required"


class AdjustmentNotPending(DomainError):
    """An adjustment is approved or rejected once."""

    code = "adjustment_not_pending"
    http_status = 409


class HoldOfAnotherWallet(DomainError):
    """An incremental authorization must extend a hold of the same cardholder."""

    code = "hold_of_another_wallet"
    http_status = 409
