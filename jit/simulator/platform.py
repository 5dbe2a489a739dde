"""How the simulator waits for the platform and reads back what it shows.

`LivePlatform` watches a running platform through its own database and Redis (the command runs
inside the platform's Django project): the outbox drained by the ledger writer, webhook events
applied by Celery, exceptions opened. Tests subclass it to run those steps themselves.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from django.core.management import call_command, get_commands, load_command_class
from django.db.models import Count, Q

FINAL_STATUSES = frozenset({"applied", "ignored", "failed"})
SIMULATOR_USERNAME = "marqeta-simulator"
CHUNK = 500


class PlatformTimeout(Exception):
    """The platform did not get there in time (the ledger writer or Celery is not running?)."""


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class LivePlatform:
    """A platform running elsewhere (`make run`): the ledger writer and Celery do the work."""

    poll_seconds = 0.2

    # waiting ----------------------------------------------------------------------------------

    def wait_for_ledger_writer(self, *, timeout: float) -> None:
        """Until every JIT decision in the Redis outbox is written to PostgreSQL."""
        from jit.outbox import outbox_lag
        from jit.redis_client import maintenance_redis

        deadline = time.monotonic() + timeout
        while (lag := outbox_lag(maintenance_redis())) > 0:
            if time.monotonic() > deadline:
                raise PlatformTimeout(
                    f"{lag} decision(s) still in the outbox after {timeout:.0f} s: "
                    "is the ledger writer (manage.py run_ledger_writer) running?"
                )
            time.sleep(self.poll_seconds)

    def settle(self, tokens: list[str], *, timeout: float) -> dict[str, str]:
        """Until each webhook event is applied, ignored or failed (Celery applies them)."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.event_statuses(tokens)
            unsettled = [t for t in tokens if statuses.get(t) not in FINAL_STATUSES]
            if not unsettled:
                return statuses
            if time.monotonic() > deadline:
                raise PlatformTimeout(
                    f"{len(unsettled)} webhook event(s) not applied after {timeout:.0f} s "
                    f"(e.g. {unsettled[0]}: {statuses.get(unsettled[0], 'not stored')}): "
                    "is the Celery worker (queue webhooks) running?"
                )
            time.sleep(self.poll_seconds)

    def replay_standin_spool(self) -> None:
        """Record the answers the gateway gave from its fallback policy (what beat does)."""
        if "replay_standin_spool" in get_commands():
            call_command("replay_standin_spool", stdout=io.StringIO())

    # reading ----------------------------------------------------------------------------------

    def event_statuses(self, tokens: list[str]) -> dict[str, str]:
        from reconciliation.models import WebhookEvent

        statuses: dict[str, str] = {}
        for chunk in _chunks(tokens):
            rows = WebhookEvent.objects.filter(token__in=chunk).values_list("token", "status")
            statuses.update(rows)
        return statuses

    def decisions(self, jit_tokens: list[str]) -> dict[str, str]:
        """Our recorded outcome (approved | declined) of each JIT message we answered."""
        from jit.models import JitDecision

        outcomes: dict[str, str] = {}
        for chunk in _chunks(jit_tokens):
            rows = JitDecision.objects.filter(jit_funding_token__in=chunk)
            outcomes.update(rows.values_list("jit_funding_token", "outcome"))
        return outcomes

    def decision_counts(self, prefix: str) -> tuple[int, int]:
        """(decisions recorded, of which approved) for the run's JIT tokens."""
        from jit.models import JitDecision

        rows = JitDecision.objects.filter(jit_funding_token__startswith=prefix)
        return rows.count(), rows.filter(outcome="approved").count()

    def exceptions(self, prefix: str) -> Counter:
        """Exceptions (in any state) by kind about the run's cards and cardholders."""
        from reconciliation.models import ReconciliationException

        rows = (
            ReconciliationException.objects.filter(
                Q(user_token__startswith=prefix) | Q(card_token__startswith=prefix)
            )
            .values("kind")
            .annotate(n=Count("pk"))
        )
        return Counter({row["kind"]: row["n"] for row in rows})

    def ledger_balances(self, user_tokens: list[str]) -> dict[str, tuple[int, int]]:
        """(available, pending) in minor units, as the ledger has them."""
        from cards.models import Cardholder
        from cards.selectors import cardholder_balances

        balances = {}
        for cardholder in Cardholder.objects.filter(token__in=user_tokens):
            current = cardholder_balances(cardholder=cardholder)
            balances[cardholder.token] = (current.available_minor, current.pending_minor)
        return balances

    # setup ------------------------------------------------------------------------------------

    def knows_cardholder(self, token: str) -> bool:
        """Whether this process sees what the platform's API wrote (the same database)."""
        from cards.models import Cardholder

        return Cardholder.objects.filter(token=token).exists()

    def api_token(self) -> str:
        """A token for the internal API: the simulator's own user, in the Ops group."""
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from rest_framework.authtoken.models import Token

        from cards.services import ensure_staff_groups

        ensure_staff_groups()
        user, created = get_user_model().objects.get_or_create(username=SIMULATOR_USERNAME)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user.groups.add(Group.objects.get(name="Ops"))
        token, _ = Token.objects.get_or_create(user=user)
        return token.key

    # the clearing file ------------------------------------------------------------------------

    def can_ingest_clearing_files(self) -> bool:
        return "pull_clearing_files" in get_commands()

    def ingest_clearing_file(self, path: Path, *, timeout: float) -> str:
        """Run `pull_clearing_files` and wait for our file to be ingested; its final status."""
        from reconciliation.models import ClearingFile

        command = load_command_class(get_commands()["pull_clearing_files"], "pull_clearing_files")
        accepted = {action.dest for action in command.create_parser("", "x")._actions}
        wanted = {"inbox": path.parent.as_uri(), "no_progress": True, "verbosity": 0}
        options = {name: value for name, value in wanted.items() if name in accepted}
        call_command(command, stdout=io.StringIO(), stderr=io.StringIO(), **options)
        deadline = time.monotonic() + timeout
        while True:
            row = ClearingFile.objects.filter(name=path.name).order_by("-pk").first()
            if row is not None and row.status in ("ingested", "rejected"):
                return row.status
            if time.monotonic() > deadline:
                status = row.status if row else "not picked up"
                raise PlatformTimeout(f"{path.name} is still {status} after {timeout:.0f} s")
            time.sleep(self.poll_seconds)
