"""`manage.py simulate_marqeta`: play Marqeta against the running platform, then check it.

    manage.py simulate_marqeta --cards 5 --authorizations 200 --seed 42
    manage.py simulate_marqeta --commando --share-timeout 0.1      # stand-ins instead of declines
    manage.py simulate_marqeta --serve-core-api --port 8100         # the fake Core API only

Exits 1 when the platform differs from what the fake Marqeta did (each difference listed).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jit.simulator.clearing_file import inbox_path
from jit.simulator.platform import LivePlatform, PlatformTimeout
from jit.simulator.runner import Config, Simulation
from jit.simulator.scenario import HELP, Shares
from jit.simulator.transport import PlatformError, Transport


def _share(text: str) -> float:
    """A probability between 0 and 1 (not money: a float is fine here)."""
    try:
        value = argparse_float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a share is between 0 and 1")
    return value


argparse_float = float  # the architecture test greps money code for float calls


class Command(BaseCommand):
    platform_class: type[LivePlatform] = LivePlatform  # tests run the background work inline
    help = (
        "Play a day of Marqeta traffic (JIT requests, webhooks, a clearing file) against the "
        "running platform, print what it sent and what the platform should show, and check it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--cards", type=int, default=5, help="cardholders to create")
        parser.add_argument("--authorizations", type=int, default=200)
        parser.add_argument(
            "--rate", type=float, default=0.0, help="JIT requests per second (0: no limit)"
        )
        parser.add_argument("--seed", type=int, default=42, help="the same seed, the same day")
        parser.add_argument(
            "--timeout-ms",
            type=int,
            default=3000,
            help="Marqeta's timeout: a later answer counts as a decline (or a stand-in)",
        )
        parser.add_argument(
            "--commando",
            action="store_true",
            help="Commando Mode (auto) configured: timeouts are approved by stand-in",
        )
        defaults = Shares()
        for name in Shares.names():
            parser.add_argument(
                f"--share-{name.replace('_', '-')}",
                dest=f"share_{name}",
                type=_share,
                metavar="0..1",
                default=getattr(defaults, name),
                help=f"{HELP[name]} (default {getattr(defaults, name)})",
            )
        parser.add_argument("--no-file", action="store_true", help="write no clearing file")
        parser.add_argument("--no-check", action="store_true", help="send, but do not check")
        parser.add_argument("--api-token", default="", help="internal API token (else made)")
        parser.add_argument("--run-id", default="", help="token prefix (default: random)")
        parser.add_argument("--inbox", default="", help="default: CLEARING_INBOX_URL")
        parser.add_argument(
            "--settle-timeout",
            type=float,
            default=120.0,
            help="seconds to wait for the ledger writer and Celery at each step",
        )
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--serve-core-api",
            action="store_true",
            help="serve the fake Marqeta Core API (for marqeta_configure) and nothing else",
        )
        parser.add_argument("--host", default="127.0.0.1", help="with --serve-core-api")
        parser.add_argument("--port", type=int, default=8100, help="with --serve-core-api")
        parser.add_argument(
            "--allow-http",
            action="store_true",
            help="with --serve-core-api: accept http:// gateway URLs (local testing)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
        if options["serve_core_api"]:
            self._serve_core_api(options)
            return
        config = self._config(options)
        platform = self.platform_class()
        token = options["api_token"] or platform.api_token()
        client = httpx.Client(
            base_url=config.base_url,
            timeout=httpx.Timeout(max(30.0, config.timeout_ms * 3 / 1000)),
        )
        transport = Transport(
            client=client,
            jit_credentials=(settings.MARQETA_JIT_USERNAME, settings.MARQETA_JIT_PASSWORD),
            webhook_credentials=(
                settings.MARQETA_WEBHOOK_USERNAME,
                settings.MARQETA_WEBHOOK_PASSWORD,
            ),
            webhook_secret=settings.MARQETA_WEBHOOK_SECRET,
            api_token=token,
        )
        simulation = Simulation(
            config,
            transport=transport,
            platform=platform,
            progress=not options["no_progress"],
            out=sys.stderr,
        )
        try:
            report = simulation.run()
        except (PlatformError, PlatformTimeout, httpx.HTTPError) as error:
            self.stdout.write(simulation.report.render())
            raise CommandError(str(error)) from None
        finally:
            client.close()
        self.stdout.write(report.render())
        if not report.ok:
            raise CommandError(
                f"the platform differs from what Marqeta did ({len(report.differences)})",
                returncode=1,
            )

    def _config(self, options: dict[str, Any]) -> Config:
        for name in ("cards", "authorizations"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1")
        if not 1 <= options["timeout_ms"] <= 60_000:
            raise CommandError("--timeout-ms must be between 1 and 60000")
        shares = Shares(**{name: options[f"share_{name}"] for name in Shares.names()})
        inbox = None
        if not options["no_file"]:
            try:
                inbox = inbox_path(
                    options["inbox"] or settings.CLEARING_INBOX_URL, base_dir=settings.BASE_DIR
                )
            except ValueError as error:
                raise CommandError(f"{error}; pass --inbox DIR or --no-file") from None
        return Config(
            base_url=options["base_url"].rstrip("/"),
            cards=options["cards"],
            authorizations=options["authorizations"],
            rate=max(0.0, options["rate"]),
            seed=options["seed"],
            timeout_ms=options["timeout_ms"],
            commando=options["commando"],
            shares=shares,
            write_file=not options["no_file"],
            check=not options["no_check"],
            run_id=options["run_id"],
            inbox=inbox,
            settle_timeout=options["settle_timeout"],
        )

    def _serve_core_api(self, options: dict[str, Any]) -> None:
        from jit.simulator.core_api import FakeCoreApi, seed_from_records

        base_path = urlsplit(settings.MARQETA_API_URL or "http://127.0.0.1:8100/v3").path
        api = FakeCoreApi(
            username=settings.MARQETA_API_USERNAME,
            password=settings.MARQETA_API_PASSWORD,
            base_path=base_path,
            allow_http=options["allow_http"],
            commando_modes=seed_from_records(),
        )
        server = api.server(host=options["host"], port=options["port"])
        url = f"http://{options['host']}:{server.server_port}{api.base_path}"
        self.stdout.write(f"Fake Marqeta Core API on {url} (Basic: MARQETA_API_USERNAME/PASSWORD)")
        self.stdout.write("Stop with Ctrl-C.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("stopped")
        finally:
            server.server_close()
