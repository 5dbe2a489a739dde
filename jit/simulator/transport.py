"""HTTP as Marqeta speaks it to us: Basic auth, raw JSON bodies, the webhook signature."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import httpx
import simplejson

JSON = "application/json"
SIGNATURE_HEADER = "X-Marqeta-Signature"


@dataclass(frozen=True, slots=True)
class Answer:
    """Our gateway's answer to one JIT request, as Marqeta received it."""

    status: int | None  # None: no answer at all (connection refused, reset, client timeout)
    body: dict[str, Any] | None
    elapsed_ms: int


class PlatformError(Exception):
    """The platform's internal API refused a setup call (shown to the operator)."""


def signature(*, body: bytes, secret: str) -> str:
    """`X-Marqeta-Signature`: hex HMAC-SHA256 of the raw body (MARQETA.md §7.1)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Transport:
    """One keep-alive HTTP client for the gateway, the webhook endpoint and the internal API."""

    def __init__(
        self,
        *,
        client: httpx.Client,
        jit_credentials: tuple[str, str],
        webhook_credentials: tuple[str, str],
        webhook_secret: str = "",
        api_token: str = "",
        custom_headers: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.jit_auth = httpx.BasicAuth(*jit_credentials)
        self.webhook_auth = httpx.BasicAuth(*webhook_credentials)
        self.webhook_secret = webhook_secret
        self.api_token = api_token
        self.custom_headers = custom_headers or {}

    # Marqeta -> us --------------------------------------------------------------------------

    def jit(self, body: bytes) -> Answer:
        """POST a JIT funding request; waits for the answer even past Marqeta's timeout, so
        the fake knows what we decided (the caller judges lateness)."""
        headers = {"Content-Type": JSON, **self.custom_headers}
        started = time.perf_counter()
        try:
            response = self.client.post(
                "/jit/marqeta/", content=body, headers=headers, auth=self.jit_auth
            )
        except httpx.HTTPError:
            return Answer(None, None, _ms_since(started))
        elapsed = _ms_since(started)
        try:
            parsed = simplejson.loads(response.content, use_decimal=True)
        except ValueError:
            parsed = None
        return Answer(response.status_code, parsed if isinstance(parsed, dict) else None, elapsed)

    def webhook(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """POST one webhook envelope; (status, parsed body)."""
        headers = {"Content-Type": JSON, **self.custom_headers}
        if self.webhook_secret:
            headers[SIGNATURE_HEADER] = signature(body=body, secret=self.webhook_secret)
        response = self.client.post(
            "/webhooks/marqeta/", content=body, headers=headers, auth=self.webhook_auth
        )
        try:
            parsed = response.json()
        except ValueError:
            parsed = {"raw": response.text[:200]}
        return response.status_code, parsed if isinstance(parsed, dict) else {}

    # the internal API -------------------------------------------------------------------------

    def _api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Token {self.api_token}", **kwargs.pop("headers", {})}
        response = self.client.request(method, f"/api/v1/{path}", headers=headers, **kwargs)
        if response.status_code >= 400:
            raise PlatformError(
                f"{method} /api/v1/{path} -> {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    def create_cardholder(self, **fields: str) -> dict[str, Any]:
        return self._api("POST", "cardholders/", json=fields)

    def create_card(self, **fields: str) -> dict[str, Any]:
        return self._api("POST", "cards/", json=fields)

    def deposit(self, *, user_token: str, amount: str, currency_code: str, key: str) -> None:
        self._api(
            "POST",
            f"cardholders/{user_token}/deposits/",
            json={"amount": amount, "currency_code": currency_code},
            headers={"Idempotency-Key": key},
        )

    def balance(self, *, user_token: str) -> dict[str, Any]:
        """`GET /api/v1/cardholders/{token}/balance/`: available, pending, ledger, source."""
        return self._api("GET", f"cardholders/{user_token}/balance/")


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
