"""A fake of Marqeta's Core API: the program gateway funding source and Commando Mode.

Just enough of Marqeta for `marqeta_configure` to be tested end to end (MARQETA.md §5.1, §9):

    POST /fundingsources/programgateway                      create (201)
    GET  /fundingsources/programgateway/{token}              read (404 when unknown)
    PUT  /fundingsources/programgateway/{token}              update (token immutable)
    PUT  /fundingsources/programgateway/customheaders/{token}
    GET  /commandomodes, GET /commandomodes/{token}          Commando Mode control sets
    POST /commandomodes                                      (Marqeta creates them on request)

Requests need Basic auth (application token : admin access token). Bad input is a 400 with
Marqeta's error body `{"error_code": ..., "error_message": ...}` [unsure: the exact codes];
responses add `account`, `version`, `created_time`, `last_modified_time` and mask the password.
A stdlib `ThreadingHTTPServer`: no Django, so it runs beside the platform or inside a test.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FUNDING_FIELDS = (
    "name",
    "token",
    "active",
    "url",
    "basic_auth_username",
    "basic_auth_password",
    "timeout_millis",
    "use_mtls",
    "custom_header",
)
ERRORS = {
    400: ("400001", "Bad request"),
    401: ("401001", "Invalid application token or access token"),
    404: ("404001", "Not found"),
    405: ("405001", "Method not allowed"),
    409: ("409001", "Conflict"),
}


class ApiError(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status, self.message = status, message or ERRORS[status][1]

    def body(self) -> dict[str, str]:
        return {"error_code": ERRORS[self.status][0], "error_message": self.message}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def masked(secret: str) -> str:
    """How secrets come back: all but the last four characters hidden."""
    return "*" * max(0, len(secret) - 4) + secret[-4:]


def _text(body: dict[str, Any], name: str, low: int, high: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise ApiError(400, f"{name}: size must be between {low} and {high}")
    return value


def _flag(body: dict[str, Any], name: str) -> None:
    if name in body and not isinstance(body[name], bool):
        raise ApiError(400, f"{name}: must be a boolean")


def _headers(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ApiError(400, "custom_header: must be a map of strings to strings")
    return dict(value)


class FakeCoreApi:
    """The fake's state and its request handling (HTTP-free, so tests may call `handle`)."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        base_path: str = "/v3",
        allow_http: bool = False,
        commando_modes: list[dict[str, Any]] | None = None,
    ) -> None:
        self.username, self.password = username, password
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.allow_http = allow_http
        self.funding_sources: dict[str, dict[str, Any]] = {}
        self.commando_modes = {mode["token"]: mode for mode in commando_modes or []}
        self.calls: list[tuple[str, str]] = []  # (method, path), for tests
        self._lock = threading.Lock()

    # requests ---------------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, *, authorization: str, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """One request -> (status, JSON body)."""
        parts = urlsplit(target)
        path = parts.path
        self.calls.append((method, path))
        try:
            if not self._authorized(authorization):
                raise ApiError(401)
            if self.base_path and not path.startswith(self.base_path + "/"):
                raise ApiError(404, f"no resource at {path}")
            path = path[len(self.base_path) :].rstrip("/")
            with self._lock:
                return self._route(method, path, parse_qs(parts.query), body)
        except ApiError as error:
            return error.status, error.body()

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.username) & hmac.compare_digest(secret, self.password)

    def _route(  # noqa: C901 - one branch per endpoint
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        if match := re.fullmatch(r"/fundingsources/programgateway/customheaders/([^/]+)", path):
            if method != "PUT":
                raise ApiError(405)
            return 200, self._put_headers(match.group(1), _json(raw))
        if match := re.fullmatch(r"/fundingsources/programgateway/([^/]+)", path):
            token = match.group(1)
            if method == "GET":
                return 200, self._shown(self._funding_source(token))
            if method == "PUT":
                return 200, self._update(token, _json(raw))
            raise ApiError(405)
        if path == "/fundingsources/programgateway":
            if method != "POST":
                raise ApiError(405)
            return 201, self._create(_json(raw))
        if match := re.fullmatch(r"/commandomodes/([^/]+)", path):
            if method != "GET":
                raise ApiError(405)
            if match.group(1) not in self.commando_modes:
                raise ApiError(404, f"commando mode {match.group(1)} not found")
            return 200, self.commando_modes[match.group(1)]
        if path == "/commandomodes":
            if method == "GET":
                return 200, self._list(list(self.commando_modes.values()), query)
            if method == "POST":
                return 201, self.add_commando_mode(_json(raw))
            raise ApiError(405)
        raise ApiError(404, f"no resource at {path}")

    # funding sources --------------------------------------------------------------------------

    def _funding_source(self, token: str) -> dict[str, Any]:
        if token not in self.funding_sources:
            raise ApiError(404, f"program gateway funding source {token} not found")
        return self.funding_sources[token]

    def _check(self, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        unknown = set(body) - set(FUNDING_FIELDS)
        if unknown:
            raise ApiError(400, f"Unrecognized field {sorted(unknown)[0]!r}")
        fields: dict[str, Any] = {}
        if creating or "name" in body:
            fields["name"] = _text(body, "name", 1, 50)
        if "token" in body:
            fields["token"] = _text(body, "token", 1, 36)
        if creating or "url" in body:
            url = body.get("url")
            if not isinstance(url, str) or len(url) > 250:
                raise ApiError(400, "url: must be a string of at most 250 characters")
            if url and not (url.startswith("https://") or self.allow_http):
                raise ApiError(400, "url: must be HTTPS")
            fields["url"] = url
        with_url = creating or bool(body.get("url"))  # a URL needs its Basic credentials
        if with_url or "basic_auth_username" in body:
            fields["basic_auth_username"] = _text(body, "basic_auth_username", 1, 50)
        if with_url or "basic_auth_password" in body:
            fields["basic_auth_password"] = _password(body)
        for name in ("active", "use_mtls"):
            _flag(body, name)
            if name in body:
                fields[name] = body[name]
        if "timeout_millis" in body:
            timeout = body["timeout_millis"]
            if isinstance(timeout, bool) or not isinstance(timeout, int):
                raise ApiError(400, "timeout_millis: must be an integer")
            if not 1000 <= timeout <= 7000:
                raise ApiError(400, "timeout_millis: must be between 1000 and 7000")
            fields["timeout_millis"] = timeout
        if "custom_header" in body:
            fields["custom_header"] = _headers(body["custom_header"])
        return fields

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = self._check(body, creating=True)
        token = fields.get("token") or str(uuid.uuid4())
        if token in self.funding_sources:
            raise ApiError(409, f"token {token} is already in use")
        now = _now()
        source = {
            "active": True,
            "use_mtls": False,
            "timeout_millis": 3000,  # [unsure] Marqeta's default when unset (MARQETA.md §5)
            "custom_header": {},
            **fields,
            "token": token,
            "account": f"{zlib.crc32(token.encode()) % 10**10:010d}",
            "version": "1",
            "created_time": now,
            "last_modified_time": now,
        }
        self.funding_sources[token] = source
        return self._shown(source)

    def _update(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        source = self._funding_source(token)
        if "token" in body and body["token"] != token:
            raise ApiError(400, "token: cannot be updated")
        fields = self._check(body, creating=False)
        fields.pop("token", None)
        self._apply(source, fields)
        return self._shown(source)

    def _put_headers(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        source = self._funding_source(token)
        if set(body) != {"custom_header"}:
            raise ApiError(400, 'the body must be {"custom_header": {...}}')
        self._apply(source, {"custom_header": _headers(body["custom_header"])})
        return self._shown(source)

    @staticmethod
    def _apply(source: dict[str, Any], fields: dict[str, Any]) -> None:
        if any(source.get(name) != value for name, value in fields.items()):
            source.update(fields)
            source["version"] = str(int(source["version"]) + 1)
            source["last_modified_time"] = _now()

    @staticmethod
    def _shown(source: dict[str, Any]) -> dict[str, Any]:
        return {**source, "basic_auth_password": masked(source["basic_auth_password"])}

    # Commando Mode ----------------------------------------------------------------------------

    def add_commando_mode(self, body: dict[str, Any]) -> dict[str, Any]:
        """A control set (Marqeta sets these up on request; tests and `--serve-core-api` too)."""
        enables = body.get("commando_mode_enables")
        if not isinstance(enables, dict) or not enables.get("program_funding_source"):
            raise ApiError(400, "commando_mode_enables.program_funding_source: is required")
        now = _now()
        criteria = body.get("real_time_standin_criteria") or {}
        mode = {
            "token": body.get("token") or str(uuid.uuid4()),
            "program_gateway_funding_source_token": body.get(
                "program_gateway_funding_source_token", ""
            ),
            "current_state": {
                "commando_enabled": False,
                "channel": "API",
                "reason": "",
                "username": "marqeta",
                **(body.get("current_state") or {}),
            },
            "commando_mode_enables": {
                "auth_controls": [],
                "velocity_controls": [],
                "ignore_card_suspended_state": False,
                "use_cache_balance": False,
                **enables,
            },
            "real_time_standin_criteria": {
                name: bool(criteria.get(name, False))
                for name in (
                    "enabled",
                    "include_connection_errors",
                    "include_response_timeouts",
                    "include_application_errors",
                )
            },
            "created_time": now,
            "last_modified_time": now,
        }
        self.commando_modes[mode["token"]] = mode
        return mode

    @staticmethod
    def _list(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
        """Marqeta's list shape: count, start_index, end_index, is_more, data."""
        try:
            size = int(query.get("count", ["10"])[0])
            start = int(query.get("start_index", ["0"])[0])
        except ValueError:
            raise ApiError(400, "count and start_index must be integers") from None
        page = items[start : start + size]
        return {
            "count": len(page),
            "start_index": start,
            "end_index": start + max(len(page) - 1, 0),
            "is_more": start + size < len(items),
            "data": page,
        }

    # serving ----------------------------------------------------------------------------------

    def server(self, *, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, document = api.handle(
                    self.command,
                    self.path,
                    authorization=self.headers.get("Authorization", ""),
                    body=body,
                )
                encoded = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return  # quiet: the command prints what matters

        return ThreadingHTTPServer((host, port), Handler)

    @contextmanager
    def running(self, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve in a thread; yields the base URL (e.g. http://127.0.0.1:41234/v3)."""
        server = self.server(host=host, port=port)
        thread = threading.Thread(target=server.serve_forever, name="fake-core-api", daemon=True)
        thread.start()
        try:
            yield f"http://{host}:{server.server_port}{self.base_path}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "Malformed JSON") from None
    if not isinstance(document, dict):
        raise ApiError(400, "the body must be a JSON object")
    return document


def _password(body: dict[str, Any]) -> str:
    """20-100 characters mixing upper and lower case, digits and symbols (MARQETA.md §2.1)."""
    password = _text(body, "basic_auth_password", 20, 100)
    classes = (r"[A-Z]", r"[a-z]", r"[0-9]", r"[^A-Za-z0-9]")
    if not all(re.search(pattern, password) for pattern in classes):
        raise ApiError(
            400,
            "basic_auth_password: must contain upper and lower case letters, numbers and symbols",
        )
    return password


def seed_from_records() -> list[dict[str, Any]]:
    """Control sets as ops recorded them in the admin (`CommandoModeRecord`), one per program,
    so a local `marqeta_configure` run has something to compare (and finds no difference)."""
    from cards.models import CommandoModeRecord, Program

    modes = []
    for program in Program.objects.order_by("pk"):
        record = CommandoModeRecord.objects.filter(program=program).first()
        pgfs = (record and record.program_gateway_funding_source_token) or f"pgfs_{program.name}"
        modes.append(
            {
                "token": f"cm_{program.name}"[:36],
                "program_gateway_funding_source_token": pgfs,
                "commando_mode_enables": {
                    "program_funding_source": f"pfs_{program.name}_standin"[:36],
                    "auth_controls": list(record.auth_controls) if record else [],
                    "velocity_controls": list(record.velocity_controls) if record else [],
                },
                "real_time_standin_criteria": {
                    "enabled": bool(record and record.real_time_standin_enabled),
                    "include_connection_errors": bool(record and record.include_connection_errors),
                    "include_response_timeouts": bool(record and record.include_response_timeouts),
                    "include_application_errors": bool(
                        record and record.include_application_errors
                    ),
                },
            }
        )
    api = FakeCoreApi(username="", password="")  # noqa: S106 - only to shape them
    return [api.add_commando_mode(mode) for mode in modes]
