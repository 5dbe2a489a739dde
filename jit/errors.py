"""Refusals of the JIT endpoint: a 400 with a stable code, never a 500."""

from config.errors import DomainError


class MalformedJitRequest(DomainError):
    """The body is not a JSON object."""

    code = "malformed_request"


class MissingJitFunding(DomainError):
    """Neither `gpa_order.jit_funding` nor `gpa_order_unload.jit_funding` is there."""

    code = "missing_jit_funding"


class InvalidJitField(DomainError):
    """A field we decide on is missing or has the wrong type."""

    code = "invalid_field"
