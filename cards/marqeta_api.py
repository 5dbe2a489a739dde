"""A small client for Marqeta's Core API: our gateway's funding source and Commando Mode.

Only what `marqeta_configure` needs (MARQETA.md §5.1, §9). Base URL and Basic credentials (the
application token and the admin access token) come from settings: `MARQETA_API_URL`,
`MARQETA_API_USERNAME`, `MARQETA_API_PASSWORD`. Marqeta's refusals (`{"error_code": ...,
"error_message": ...}`) and network failures become `MarqetaApiError` with a readable message.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

PAGE_SIZE = 10  # Marqeta's default `count` on list endpoints


class MarqetaApiError(Exception):
    """Marqeta refused a call, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, error_code: str = "") -> None:
        super().__init__(message)
        self.message, self.status, self.error_code = message, status, error_code


class MarqetaCoreApi:
    """`GET/POST/PUT` on Marqeta's Core API with Basic auth, JSON in and out."""

    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        password: str,
        timeout_seconds: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url:
            raise MarqetaApiError("MARQETA_API_URL is not set")
        if not username or not password:
            raise MarqetaApiError("MARQETA_API_USERNAME and MARQETA_API_PASSWORD must be set")
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url + "/",
            auth=httpx.BasicAuth(username, password),
            timeout=timeout_seconds,
            headers={"Accept": "application/json"},
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> MarqetaCoreApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, *, json: Any = None, params: dict | None = None
    ) -> dict[str, Any]:
        where = f"{method} {self.base_url}/{path}"
        try:
            response = self._client.request(method, path, json=json, params=params)
        except httpx.HTTPError as error:
            raise MarqetaApiError(f"{where}: {error.__class__.__name__}: {error}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            code = str(body.get("error_code", "")) if isinstance(body, dict) else ""
            text = body.get("error_message", "") if isinstance(body, dict) else ""
            detail = text or response.text[:200] or response.reason_phrase
            raise MarqetaApiError(
                f"{where} -> {response.status_code}"
                + (f" (error_code {code})" if code else "")
                + f": {detail}",
                status=response.status_code,
                error_code=code,
            )
        if not isinstance(body, dict):
            raise MarqetaApiError(f"{where}: the answer is not a JSON object")
        return body

    # the program gateway funding source ------------------------------------------------------

    def get_program_gateway(self, token: str) -> dict[str, Any] | None:
        """The funding source, or None when Marqeta has none with this token (404)."""
        try:
            return self._call("GET", f"fundingsources/programgateway/{token}")
        except MarqetaApiError as error:
            if error.status == 404:
                return None
            raise

    def create_program_gateway(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "fundingsources/programgateway", json=body)

    def update_program_gateway(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", f"fundingsources/programgateway/{token}", json=body)

    def update_custom_headers(self, token: str, headers: dict[str, str]) -> dict[str, Any]:
        return self._call(
            "PUT",
            f"fundingsources/programgateway/customheaders/{token}",
            json={"custom_header": headers},
        )

    # Commando Mode ---------------------------------------------------------------------------

    def commando_modes(self) -> list[dict[str, Any]]:
        """Every Commando Mode control set of the program (all pages)."""
        modes: list[dict[str, Any]] = []
        start = 0
        while True:
            page = self._call(
                "GET", "commandomodes", params={"count": PAGE_SIZE, "start_index": start}
            )
            data = page.get("data") or []
            modes += data
            if not page.get("is_more") or not data:
                return modes
            start += len(data)

    def commando_mode(self, token: str) -> dict[str, Any]:
        return self._call("GET", f"commandomodes/{token}")


def core_api_from_settings(**kwargs: Any) -> MarqetaCoreApi:
    return MarqetaCoreApi(
        base_url=settings.MARQETA_API_URL,
        username=settings.MARQETA_API_USERNAME,
        password=settings.MARQETA_API_PASSWORD,
        **kwargs,
    )
