"""The `DomainError` base class and the one renderer of API errors.

Every refusal the API gives has the same shape, `{"code", "message", "details"}`, and a stable
`code` that clients and tests match on (never the message text).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class DomainError(Exception):
    """A refusal we expected and can explain. `code` is part of the API: never rename one."""

    code = "domain_error"
    http_status = 400

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message, self.details = message, details

    def as_body(self) -> dict[str, Any]:
        """The JSON body of this error as the API sends it."""
        return {"code": self.code, "message": self.message, "details": self.details}


class NotFound(DomainError):
    """A resource named in the URL or the body does not exist."""

    code = "not_found"
    http_status = 404


class IdempotencyConflict(DomainError):
    """The same idempotency key arrived with a different request."""

    code = "idempotency_conflict"
    http_status = 409


class InvalidAmount(DomainError):
    """An amount that is not a number, has too many decimals, or is out of range."""

    code = "invalid_amount"


class UnknownCurrency(DomainError):
    """A currency code we do not know the exponent of."""

    code = "unknown_currency"


_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "invalid_request",
}


def _drf_code(error: exceptions.APIException) -> str:
    for error_class, code in _DRF_CODES.items():
        if isinstance(error, error_class):
            return code
    return "request_refused"


def api_exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    """Render `DomainError` and DRF's own errors in one shape; anything else is a bug (500)."""
    if isinstance(error, DomainError):
        return Response(error.as_body(), status=error.http_status)
    if isinstance(error, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = {"code": "request_too_large", "message": f"the body is over {limit} bytes"}
        return Response({**body, "details": {}}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    response = drf_exception_handler(error, context)
    if response is None:
        return None
    if isinstance(error, exceptions.ValidationError):
        body = {"code": "invalid_request", "message": "the request is invalid"}
        body["details"] = (
            response.data if isinstance(response.data, dict) else {"errors": response.data}
        )
    elif isinstance(error, exceptions.APIException):
        body = {"code": _drf_code(error), "message": str(error.detail), "details": {}}
    elif isinstance(error, Http404):
        body = {"code": "not_found", "message": "not found", "details": {}}
    elif isinstance(error, PermissionDenied):
        body = {"code": "permission_denied", "message": "permission denied", "details": {}}
    else:  # pragma: no cover - drf_exception_handler handles only the classes above
        body = {"code": "request_refused", "message": str(error), "details": {}}
    response.data = body
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        response["WWW-Authenticate"] = response.get("WWW-Authenticate", "Token")
    return response


API_PREFIXES = ("/api/", "/jit/", "/webhooks/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """`handler404`: an unknown URL under the API's prefixes gets the API's error body (a
    client parses JSON); anywhere else, Django's page."""
    if request.path.startswith(API_PREFIXES):
        body = {"code": "not_found", "message": f"no endpoint at {request.path[:200]}"}
        return JsonResponse({**body, "details": {}}, status=404)
    return defaults.page_not_found(request, exception)
