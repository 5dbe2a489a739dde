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


class CardholderClosed(DomainError):
    """A closed cardholder is never reopened."""

    code = "cardholder_closed"
    http_status = 409


# --- spend controls, velocity limits, fraud rules, fallback --------------------------------


class InvalidScope(DomainError):
    """Controls and limits apply to exactly one program, cardholder or card."""

    code = "invalid_scope"


class InvalidMcc(DomainError):
    """A merchant category code is four digits, e.g. "5411"."""

    code = "invalid_mcc"


class InvalidMccGroup(DomainError):
    """An MCC group named in a control must exist in the control's program."""

    code = "invalid_mcc_group"


class InvalidCountry(DomainError):
    """A country is an ISO 3166 alpha-3 code, e.g. "PRK", as Marqeta sends it."""

    code = "invalid_country"


class InvalidChannel(DomainError):
    code = "invalid_channel"


class InvalidWindow(DomainError):
    code = "invalid_window"


class InvalidLimit(DomainError):
    """A velocity limit caps an amount, a count or both, each above zero, once per window."""

    code = "invalid_limit"


class VelocityLimitNotFound(NotFound):
    code = "velocity_limit_not_found"


class InvalidFraudRule(DomainError):
    """An unknown kind, mode or action, or an empty name."""

    code = "invalid_fraud_rule"


class InvalidRuleParams(DomainError):
    """A fraud rule's params do not fit its kind."""

    code = "invalid_rule_params"


class InvalidFallbackPolicy(DomainError):
    code = "invalid_fallback_policy"


class InvalidCommandoModeRecord(DomainError):
    code = "invalid_commando_mode_record"
