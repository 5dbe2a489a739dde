"""Card-domain refusals, each with a stable code."""

from config.errors import DomainError, NotFound


class CardholderNotFound(NotFound):
    code = "cardholder_not_found"


class CardNotFound(NotFound):
    code = "card_not_found"


class TokenTaken(DomainError):
    """A client-supplied token is already in use."""

    code = "token_taken"
    http_status = 409


class InvalidTimezone(DomainError):
    code = "invalid_timezone"


class CardholderNotActive(DomainError):
    """New cards and deposits need an active cardholder."""

    code = "cardholder_not_active"
    http_status = 409


class CardTerminated(DomainError):
    """A terminated card is never reactivated."""

    code = "card_terminated"
    http_status = 409


class IdempotencyKeyMissing(DomainError):
    """Money-moving requests need an `Idempotency-Key` header."""

    code = "idempotency_key_missing"


class DepositCurrencyMismatch(DomainError):
    code = "currency_mismatch"


class NoProgram(DomainError):
    """The API creates cardholders in the program; none is configured yet."""

    code = "no_program"
    http_status = 409
