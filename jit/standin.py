"""Replay the stand-in spool into the ledger, once per decision, flagged as fallback."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from jit.outbox import OutboxEvent, Wallets, apply_event
from jit.receivers import STANDIN_ACTOR

logger = logging.getLogger("jit.standin")


@dataclass(frozen=True, slots=True)
class SpoolReport:
    files: int
    decisions: int
    approved: int


def _claim_spool(path: Path) -> Path | None:
    """Rename the live spool so new stand-ins start a fresh file while we replay this one."""
    if not path.exists():
        return None
    claimed = path.with_name(f"{path.name}.replaying-{time.time_ns()}")
    path.rename(claimed)
    return claimed


def replay_standin_spool(*, path: Path | None = None) -> SpoolReport:
    """Apply every spooled stand-in (and any file a crashed replay left), then archive them."""
    live = path or Path(settings.JIT_STANDIN_SPOOL)
    _claim_spool(live)
    files = sorted(live.parent.glob(f"{live.name}.replaying-*"))
    decisions = approved = 0
    for spool in files:
        wallets = Wallets()
        for number, line in enumerate(spool.read_text().splitlines(), start=1):
            record = json.loads(line)
            event = OutboxEvent(
                stream=spool.name,
                event_id=str(number),
                fields={**record["fields"], "meta": record["meta"]},
            )
            # One transaction a decision, not a file: a file-long transaction held many
            # wallets' locks and deadlocked with the ledger writers (seen under fault tests).
            # A decision applied before (a crashed replay) replays: the ledger's keys hold.
            with transaction.atomic():
                decision = apply_event(event, wallets, actor=STANDIN_ACTOR, is_fallback=True)
            decisions += 1
            approved += decision.outcome == "approved"
        spool.rename(spool.with_name(spool.name.replace(".replaying-", ".replayed-")))
    report = SpoolReport(files=len(files), decisions=decisions, approved=approved)
    logger.info("stand-in spool replayed: %s", report)
    return report
