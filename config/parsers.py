"""JSON parsing that never makes a float: numbers with a fraction become `Decimal`."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class RequestTooLarge(ParseError):
    """The body is over the configured size limit."""

    status_code = 413
    default_code = "request_too_large"


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


class DecimalJSONParser(JSONParser):
    """Like DRF's JSON parser, but `parse_float=Decimal` and NaN/Infinity refused."""

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:  # noqa: ANN401 - JSON is any
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(f"the body is larger than {limit} bytes")
        try:
            return json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as error:
            raise ParseError(f"malformed JSON: {error}") from None
