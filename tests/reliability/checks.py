"""How every scenario ends: Marqeta's follow-ups sent, the platform drained, the invariants
checked inside the stack, and one report line (the figures `make reliability` prints)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from jit.outbox import outbox_lag
from reconciliation.models import WebhookEvent
from tests.reliability.stack import Stack, StackError, wait_until
from tests.reliability.traffic import Answer, Traffic, answers_file, report_timeouts, summary

REPORT_ENV = "RELIABILITY_REPORT"  # a file the report lines are appended to (scripts/...)
LOSSES = ("approvals_not_held", "approved_not_held", "answered_not_recorded")
RETRIES = "replay_retries"  # failed spool replays, run again as beat would: a figure, not a check
FINAL_WEBHOOK_STATUSES = ("applied", "ignored", "failed", "waiting")


def lag(stack: Stack) -> int:
    """Decisions in the outbox not yet written to PostgreSQL."""
    return outbox_lag(stack.redis.client())


def dead_writers(stack: Stack) -> list[str]:
    return [writer.name for writer in stack.writers if not writer.alive]


def restart_dead_writers(stack: Stack) -> list[str]:
    """Which ledger writers had exited (a scenario's finding), then everything running again."""
    died = dead_writers(stack)
    stack.ensure_running()
    return died


def wait_for_drain(stack: Stack, *, timeout: float = 900) -> float:
    """Seconds until the ledger writers have written every decision of the outbox."""
    started = time.monotonic()

    def drained() -> bool:
        if dead := dead_writers(stack):
            raise StackError(f"{', '.join(dead)} exited:\n{stack.writers[0].tail()}")
        return lag(stack) == 0

    wait_until(drained, timeout=timeout, what="outbox drained", every=0.25)
    return round(time.monotonic() - started, 1)


def webhook_statuses(stack: Stack, tokens: list[str]) -> dict[str, str]:
    table = WebhookEvent._meta.db_table
    with stack.pg.connect() as connection:
        rows = connection.execute(
            f"SELECT token, status FROM {table} WHERE token = ANY(%s)",  # noqa: S608 - our table
            [tokens],
        )
        return dict(rows.fetchall())


def close_unanswered(stack: Stack, traffic: Traffic) -> int:
    """Marqeta's timeout webhooks for the requests that got no answer, applied by Celery."""
    purchases = [traffic.shopper.sent[a.token] for a in traffic.answers if a.status is None]
    if not purchases:
        return 0
    assert set(report_timeouts(stack.base_url, purchases)) == {200}
    tokens = [purchase.message.token for purchase in purchases]

    def processed() -> bool:
        statuses = webhook_statuses(stack, tokens)
        return len(statuses) == len(tokens) and set(statuses.values()) <= set(
            FINAL_WEBHOOK_STATUSES
        )

    wait_until(processed, timeout=120, what="timeout webhooks applied", every=0.25)
    return len(purchases)


def unreplayed_spool(stack: Stack) -> list[Path]:
    """The live spool and any file a failed replay left (`.replaying-*`)."""
    return [
        p for p in stack.spool.parent.glob(f"{stack.spool.name}*") if ".replayed-" not in p.name
    ]


def replay_spool(stack: Stack, *, attempts: int = 3) -> int:
    """`replay_standin_spool` as beat runs it (every minute): a failed run leaves its file for
    the next one, so run it again. How many runs failed (reported, see docs/reliability.md)."""
    for failures in range(attempts):
        if not unreplayed_spool(stack):
            return failures
        try:
            stack.manage("replay_standin_spool")
        except StackError as error:
            print(f"replay_standin_spool failed, run {failures + 1}: {str(error)[-400:]}")
            continue
        return failures
    raise StackError(f"replay_standin_spool failed {attempts} times")


def settle(stack: Stack, traffic: Traffic, directory: Path) -> dict[str, Any]:
    """Drain the outbox, replay stand-ins, send Marqeta's timeouts; then every invariant.

    The spool is replayed while the writers are idle: a replay running beside a writer's batch
    can deadlock on the account rows (see docs/reliability.md, Findings)."""
    wait_for_drain(stack)
    retries = replay_spool(stack)
    wait_for_drain(stack)
    close_unanswered(stack, traffic)
    answers = answers_file(traffic.answers, directory / "answers.json")
    return {**stack.stackside("check", "--answers", str(answers)), RETRIES: retries}


def problems(found: dict[str, Any]) -> dict[str, Any]:
    """The checks that found something (a list with rows, a count above zero)."""
    return {name: value for name, value in found.items() if value and name != RETRIES}


def lost(found: dict[str, Any]) -> int:
    return sum(len(found.get(name, [])) for name in LOSSES)


def report(scenario: str, answers: list[Answer], found: dict[str, Any], **extra: Any) -> str:
    """A fault scenario's line: what Marqeta got, what was lost, what the scenario saw."""
    figures = {**summary(answers), "lost": lost(found), RETRIES: found.get(RETRIES, 0)}
    return report_line(scenario, {**figures, **extra})


def report_line(scenario: str, figures: dict[str, Any]) -> str:
    """Print (and append to $RELIABILITY_REPORT) one line of figures."""
    line = f"{scenario}: " + " ".join(f"{name}={value}" for name, value in figures.items())
    print(line)
    if path := os.environ.get(REPORT_ENV):
        with Path(path).open("a") as out:
            out.write(line + "\n")
    return line


def assert_clean(found: dict[str, Any]) -> None:
    broken = problems(found)
    assert broken == {}, f"invariants broken: {broken}"
