"""Reconciliation refusals, each with a stable code."""

from config.errors import DomainError, NotFound

__all__ = [
    "AlreadyRematched",
    "BadSignature",
    "ClearingAlreadyPosted",
    "ExceptionAlreadyResolved",
    "ExceptionHasNoHold",
    "MalformedWebhook",
    "MissingEventToken",
    "ParentNotYetKnown",
    "RematchNotSupported",
    "UnknownCardOrUser",
    "UnknownExceptionKind",
    "WebhookTooLarge",
    "WrongHoldForRematch",
]


class MalformedWebhook(DomainError):
    """The body is not JSON, not an object, or not an envelope of event arrays."""

    code = "malformed_webhook"


class WebhookTooLarge(DomainError):
    """The body is over `MARQETA_WEBHOOK_MAX_BYTES`."""

    code = "request_too_large"
    http_status = 413


class BadSignature(DomainError):
    """`X-Marqeta-Signature` is missing or is not the HMAC of the body we received."""

    code = "bad_signature"
    http_status = 403


class ParentNotYetKnown(DomainError):
    """The event follows a transaction (or a decision) we have not stored yet: try again later."""

    code = "parent_not_yet_known"
    http_status = 409


class UnknownCardOrUser(NotFound):
    """The event names a card or a cardholder this platform does not have."""

    code = "unknown_card"


class MissingEventToken(DomainError):
    """A transaction event without a `token` cannot be applied exactly once."""

    code = "missing_token"


class UnknownExceptionKind(DomainError):
    """Exceptions are typed; the kind must be one of `ReconciliationException.Kind`."""

    code = "unknown_exception_kind"


class ExceptionAlreadyResolved(DomainError):
    """A resolved exception is closed: it is not assigned, started, released or resolved again."""

    code = "exception_already_resolved"
    http_status = 409


class ExceptionHasNoHold(DomainError):
    """Releasing the linked hold needs an exception that links a hold."""

    code = "exception_has_no_hold"
    http_status = 409


class RematchNotSupported(DomainError):
    """Only a clearing that moved no money can be rematched: an `unmatched_clearing` or an
    `out_of_order_unresolved` clearing, from a file line or a failed webhook."""

    code = "rematch_not_supported"
    http_status = 409


class ClearingAlreadyPosted(DomainError):
    """Money already moved under the clearing's token (a fuzzy match, a webhook, a re-sent line):
    rematching would charge twice, so the correction is a manual adjustment instead."""

    code = "clearing_already_posted"
    http_status = 409


class WrongHoldForRematch(DomainError):
    """The chosen hold cannot take the clearing: another cardholder's, another currency, or an
    incremental (a chain is cleared through its first authorization). `details["why"]` says."""

    code = "wrong_hold_for_rematch"
    http_status = 409


class AlreadyRematched(DomainError):
    """The exception was rematched to another hold; a second rematch would be a correction."""

    code = "already_rematched"
    http_status = 409
