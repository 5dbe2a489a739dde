"""`manage.py marqeta_configure`: register our JIT gateway with Marqeta, then compare Commando Mode.

    manage.py marqeta_configure --gateway-url https://gw.example.com/jit/marqeta/
    manage.py marqeta_configure --gateway-url http://127.0.0.1:8000/jit/marqeta/ --allow-http

1. The program gateway funding source (MARQETA.md §9): created once (GET 404 -> POST), then
   updated with PUT on every run (idempotent), printing what changed. Its Basic credentials
   are ours: `MARQETA_JIT_USERNAME` / `MARQETA_JIT_PASSWORD`. `timeout_millis` is always sent
   (MARQETA.md §10: do not rely on Marqeta's default).
2. Commando Mode (§5.1): Marqeta's control sets are read back and compared with the record ops
   keep in the admin (`CommandoModeRecord`); each difference is listed.

Base URL and credentials: `MARQETA_API_URL`, `MARQETA_API_USERNAME`, `MARQETA_API_PASSWORD`.
Marqeta's errors are shown as Marqeta wrote them; the command then exits non-zero.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cards.marqeta_api import MarqetaApiError, MarqetaCoreApi, core_api_from_settings
from cards.models import CommandoModeRecord, Program
from cards.selectors import default_program

COMPARED = ("name", "url", "basic_auth_username", "timeout_millis", "active", "use_mtls")
HEADER_RE = re.compile(r"^([A-Za-z0-9!#$%&'*+.^_`|~-]+)=(.*)$")  # an RFC 9110 token name
CRITERIA = (
    ("enabled", "real_time_standin_enabled"),
    ("include_connection_errors", "include_connection_errors"),
    ("include_response_timeouts", "include_response_timeouts"),
    ("include_application_errors", "include_application_errors"),
)


def masked(secret: str) -> str:
    """How Marqeta shows a secret: all but the last four characters hidden."""
    return "*" * max(0, len(secret) - 4) + secret[-4:]


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return "(none)" if value in (None, "") else str(value)


class Command(BaseCommand):
    help = "Register (or update) our JIT gateway with Marqeta and compare Commando Mode."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--gateway-url", required=True, help="our public JIT URL, e.g. https://…/jit/marqeta/"
        )
        parser.add_argument("--program", default="", help="program name (default: the first)")
        parser.add_argument("--token", default="", help="funding source token (pgfs_<program>)")
        parser.add_argument("--name", default="", help="funding source name (≤ 50 characters)")
        parser.add_argument(
            "--timeout-millis",
            type=int,
            default=3000,
            help="Marqeta's wait for our answer, 1000-7000 (default 3000, always sent)",
        )
        parser.add_argument(
            "--header",
            action="append",
            default=None,
            metavar="NAME=VALUE",
            help="a custom header Marqeta sends with each JIT request (repeat; when given, "
            "the headers become exactly these)",
        )
        parser.add_argument("--inactive", action="store_true", help="register it inactive")
        parser.add_argument(
            "--allow-http",
            action="store_true",
            help="accept an http:// gateway URL (only for the local fake Marqeta)",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="exit non-zero when Commando Mode differs from our record",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
        program = self._program(options["program"])
        token = options["token"] or f"pgfs_{program.name}"[:36]
        desired = self._desired(program, token, options)
        headers = self._headers(options["header"])
        try:
            with core_api_from_settings() as api:
                self.stdout.write(f"Marqeta Core API: {api.base_url}")
                self._funding_source(api, token, desired, headers)
                differences = self._commando(api, program, token)
        except MarqetaApiError as error:
            raise CommandError(f"Marqeta refused: {error.message}") from None
        if differences and options["strict"]:
            raise CommandError(f"Commando Mode differs from our record ({differences})")

    # input ------------------------------------------------------------------------------------

    def _program(self, name: str) -> Program:
        if not name:
            return default_program()
        program = Program.objects.filter(name=name).first()
        if program is None:
            raise CommandError(f"no program named {name!r}")
        return program

    def _desired(self, program: Program, token: str, options: dict[str, Any]) -> dict[str, Any]:
        """The funding source as it must be, checked here first for a clear message."""
        url = options["gateway_url"]
        scheme = urlsplit(url).scheme
        if scheme != "https" and not (scheme == "http" and options["allow_http"]):
            raise CommandError(
                f"--gateway-url must be https:// (Marqeta refuses anything else): {url}"
                + ("" if scheme != "http" else "; --allow-http is for the local fake only")
            )
        if len(url) > 250:
            raise CommandError("--gateway-url is longer than Marqeta's 250 characters")
        if not 1000 <= options["timeout_millis"] <= 7000:
            raise CommandError("--timeout-millis must be between 1000 and 7000")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,36}", token):
            raise CommandError(f"--token must be 1-36 letters, digits, '_', '.', '-': {token!r}")
        name = options["name"] or f"{program.name} JIT gateway"
        if not 1 <= len(name) <= 50:
            raise CommandError("--name must be 1 to 50 characters")
        username, password = settings.MARQETA_JIT_USERNAME, settings.MARQETA_JIT_PASSWORD
        if not 1 <= len(username) <= 50:
            raise CommandError("MARQETA_JIT_USERNAME must be 1 to 50 characters")
        classes = (r"[A-Z]", r"[a-z]", r"[0-9]", r"[^A-Za-z0-9]")
        if not 20 <= len(password) <= 100 or not all(re.search(c, password) for c in classes):
            raise CommandError(
                "MARQETA_JIT_PASSWORD must be 20-100 characters mixing upper and lower case, "
                "digits and symbols (Marqeta's rule)"
            )
        return {
            "name": name,
            "url": url,
            "basic_auth_username": username,
            "basic_auth_password": password,
            "timeout_millis": options["timeout_millis"],
            "active": not options["inactive"],
            "use_mtls": False,
        }

    def _headers(self, pairs: list[str] | None) -> dict[str, str] | None:
        if pairs is None:
            return None  # leave whatever headers Marqeta has
        headers = {}
        for pair in pairs:
            match = HEADER_RE.match(pair)
            if not match:
                raise CommandError(f"--header wants NAME=VALUE, got {pair!r}")
            headers[match.group(1)] = match.group(2)
        return headers

    # the funding source -----------------------------------------------------------------------

    def _funding_source(
        self,
        api: MarqetaCoreApi,
        token: str,
        desired: dict[str, Any],
        headers: dict[str, str] | None,
    ) -> None:
        current = api.get_program_gateway(token)
        if current is None:
            created = api.create_program_gateway(
                {"token": token, **desired, "custom_header": headers or {}}
            )
            self.stdout.write(f"Created program gateway funding source {token}:")
            for name in (*COMPARED, "basic_auth_password", "custom_header", "account"):
                self.stdout.write(f"  {name:<22} {_shown(created.get(name))}")
            return
        changes = self._changes(current, desired)
        updated = api.update_program_gateway(token, desired)  # always: see the password note
        if headers is not None and headers != (current.get("custom_header") or {}):
            changes.append(
                f"custom_header: {_shown(sorted(current.get('custom_header') or {}))} -> "
                f"{_shown(sorted(headers))}"
            )
            updated = api.update_custom_headers(token, headers)
        self.stdout.write(
            f"Updated program gateway funding source {token} with PUT "
            f"(version {updated.get('version', '?')}):"
        )
        for change in changes or ["no change"]:
            self.stdout.write(f"  {change}")

    def _changes(self, current: dict[str, Any], desired: dict[str, Any]) -> list[str]:
        changes = [
            f"{name}: {_shown(current.get(name))} -> {_shown(desired[name])}"
            for name in COMPARED
            if current.get(name) != desired[name]
        ]
        # Marqeta shows the password masked: a change is visible only in its length or last four
        if current.get("basic_auth_password") != masked(desired["basic_auth_password"]):
            changes.append("basic_auth_password: changed (now MARQETA_JIT_PASSWORD)")
        return changes

    # Commando Mode ----------------------------------------------------------------------------

    def _commando(self, api: MarqetaCoreApi, program: Program, token: str) -> int:
        """Print Marqeta's control sets against our record; the number of differences."""
        modes = api.commando_modes()
        record = CommandoModeRecord.objects.filter(program=program).first()
        ours = [m for m in modes if m.get("program_gateway_funding_source_token") == token]
        self.stdout.write("")
        if not modes:
            self.stdout.write(
                "Commando Mode: Marqeta has no control set. Ask Marqeta to configure one "
                "(docs/marqeta-setup.md); until then a gateway timeout is a decline."
            )
            return 1 if record and record.real_time_standin_enabled else 0
        if not ours:
            listed = ", ".join(str(m.get("token")) for m in modes)
            self.stdout.write(
                f"Commando Mode: no control set names funding source {token} "
                f"(Marqeta has: {listed})."
            )
            return 1
        if record is None:
            self.stdout.write(
                f"Commando Mode: no record for program {program.name} in the admin "
                "(Cards > Commando Mode records); Marqeta's control set(s) below, unchecked."
            )
        differences = 0
        for mode in ours:
            differences += self._compare(mode, record)
        return differences

    def _compare(self, mode: dict[str, Any], record: CommandoModeRecord | None) -> int:
        enables = mode.get("commando_mode_enables") or {}
        criteria = mode.get("real_time_standin_criteria") or {}
        state = mode.get("current_state") or {}
        self.stdout.write(
            f"Commando Mode control set {mode.get('token')}: commando_enabled "
            f"{_shown(state.get('commando_enabled', False))} (channel "
            f"{state.get('channel') or '?'}), stand-in funding source "
            f"{enables.get('program_funding_source') or '(none)'}"
        )
        rows: list[tuple[str, object, object]] = [
            (
                "program_gateway_funding_source_token",
                mode.get("program_gateway_funding_source_token"),
                (record.program_gateway_funding_source_token or None) if record else None,
            )
        ]
        for theirs, field in CRITERIA:
            mine = getattr(record, field) if record else None
            rows.append((f"real_time_standin_criteria.{theirs}", bool(criteria.get(theirs)), mine))
        for name in ("auth_controls", "velocity_controls"):
            mine = sorted(getattr(record, name)) if record else None
            rows.append((f"commando_mode_enables.{name}", sorted(enables.get(name) or []), mine))
        self.stdout.write(f"  {'field':<54} {'Marqeta':<16} our record (admin)")
        differences = 0
        for name, theirs, mine in rows:
            differs = record is not None and mine is not None and theirs != mine
            if name.startswith("program_gateway") and mine is None:
                differs = False  # not recorded: nothing to compare
            differences += differs
            flag = "  <- differs" if differs else ""
            self.stdout.write(f"  {name:<54} {_shown(theirs):<16} {_shown(mine)}{flag}")
        if differences:
            self.stdout.write(
                f"  {differences} difference(s): ask Marqeta to change the control set, or "
                "correct the record in the admin."
            )
        elif record is not None:
            self.stdout.write("  Marqeta's control set matches our record.")
        return differences
