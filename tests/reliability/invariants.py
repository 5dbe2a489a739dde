"""The invariants every reliability scenario ends with, read inside the stack's own Django.

Each check returns the offending rows (an empty list when all is well), so the report can say
exactly what broke. The ledger's own consistency selectors are reused as they are; the rest
says what the issue asks of a platform that was just hurt:

- every ledger transaction balances, every stored balance equals the sum of its entries, every
  held account equals its open holds (`ledger.selectors`);
- every authorization chain adds up: what it held = what is still held + what clearings took
  or released + what releases gave back (so nothing is cleared or released twice);
- every approval the gateway recorded is held exactly once (a hold `jit:<token>`), and no
  decline keeps money held;
- every approval Marqeta was told of (the clients' answers) is recorded and held;
- no available balance is below zero unless a stand-in, a force post or a clearing made it so,
  and then a `NegativeBalance` flags it;
- nothing is left behind: the outbox is drained, the stand-in spool replayed, and the cache
  equals the ledger (`jit.drift`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import F, Sum
from django.db.models.functions import Coalesce

from jit.drift import find_drift
from jit.keys import all_outbox_keys
from jit.methods import Op
from jit.models import JitDecision
from jit.outbox import outbox_lag
from jit.redis_client import maintenance_redis
from ledger.models import Account, Clearing, Hold, HoldRelease, HoldStatus, Kind, NegativeBalance
from ledger.selectors import drifted_running_balances, holds_out_of_step, unbalanced_transactions

HOLDING_OPS = (Op.AUTH, Op.STANDIN)
OVERDRAWING_KINDS = (Kind.FORCE_POST, Kind.CLEARING)  # the network already paid


def chains_out_of_step() -> list[str]:
    """Authorization chains whose held amount is not fully accounted for."""
    held: dict[int, int] = defaultdict(int)
    for root, amount, remaining in Hold.objects.annotate(
        root=Coalesce("original_id", "id")
    ).values_list("root", "amount_minor", "remaining_minor"):
        held[root] += amount - remaining
    used: dict[int, int] = defaultdict(int)
    cleared = Clearing.objects.filter(hold__isnull=False).values("hold_id")
    for row in cleared.annotate(n=Sum(F("from_hold_minor") + F("released_minor"))):
        used[row["hold_id"]] += row["n"]
    for row in HoldRelease.objects.values("hold_id").annotate(n=Sum("amount_minor")):
        used[row["hold_id"]] += row["n"]
    wrong = [root for root in held.keys() | used.keys() if held[root] != used[root]]
    keys = Hold.objects.filter(pk__in=wrong).values_list("authorization_key", flat=True)
    return sorted(keys)


def approvals_not_held() -> list[str]:
    """Approvals recorded without a hold (lost money) or refused by the ledger."""
    approved = JitDecision.objects.filter(
        outcome="approved", op__in=HOLDING_OPS, amount_minor__gt=0
    )
    missing = approved.filter(hold__isnull=True).values_list("jit_funding_token", "ledger_error")
    return [f"{token}: {error or 'no hold'}" for token, error in missing]


def holds_without_approval() -> list[str]:
    """Money still held for a JIT token whose recorded answer is not an approval."""
    approved = JitDecision.objects.filter(outcome="approved").values("jit_funding_token")
    held = Hold.objects.filter(status=HoldStatus.OPEN, jit_funding_token__gt="", original=None)
    return sorted(
        held.exclude(jit_funding_token__in=approved).values_list("authorization_key", flat=True)
    )


def overdrafts() -> dict[str, list[str]]:
    """Negative available balances: unflagged ones, and ones no rule allowed."""
    negative = Account.objects.filter(kind=Account.Kind.AVAILABLE, balance_minor__lt=0)
    flagged = NegativeBalance.objects.filter(resolved_at__isnull=True)
    unflagged = negative.exclude(pk__in=flagged.values("account_id"))
    allowed = [
        flag.account.code
        for flag in flagged.select_related("account", "opened_by__hold")
        if flag.opened_by.kind in OVERDRAWING_KINDS
        or (flag.opened_by.kind == Kind.HOLD and flag.opened_by.hold.is_standin)
    ]
    return {
        "negative_not_flagged": sorted(unflagged.values_list("code", flat=True)),
        "overdraft_not_allowed": sorted(
            set(flagged.values_list("account__code", flat=True)) - set(allowed)
        ),
    }


def leftovers() -> dict[str, Any]:
    """What a drained, replayed platform must not have: outbox events, spooled stand-ins."""
    spool = Path(settings.JIT_STANDIN_SPOOL)
    unreplayed = [p.name for p in spool.parent.glob(f"{spool.name}*") if ".replayed-" not in p.name]
    return {"outbox_events": outbox_lag(maintenance_redis()), "spool_files": unreplayed}


def ledger_invariants(*, with_cache: bool = True) -> dict[str, Any]:
    """Every invariant at once; `with_cache` also compares each cached balance with the ledger."""
    found: dict[str, Any] = {
        "unbalanced_transactions": unbalanced_transactions(),
        "drifted_running_balances": drifted_running_balances(),
        "holds_out_of_step": holds_out_of_step(),
        "chains_out_of_step": chains_out_of_step(),
        "approvals_not_held": approvals_not_held(),
        "holds_without_approval": holds_without_approval(),
        **overdrafts(),
    }
    if with_cache:
        found["cache_drift"] = [
            f"{d.user_token}: cache {d.cached_minor} ledger {d.expected_minor}"
            for d in find_drift(settle_seconds=1.0)
        ]
    return found


def answers_against_ledger(answers: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What Marqeta was told against what the ledger recorded, token by token.

    `answers`: {"token", "status" (200 | 402 | other | None: no answer), "fallback"}. A request
    that got no answer timed out at Marqeta, which then tells us so (a declined authorization
    webhook): by the time of this check nothing may stay held for it.
    """
    tokens = [answer["token"] for answer in answers]
    decisions = {
        d.jit_funding_token: d
        for d in JitDecision.objects.filter(jit_funding_token__in=tokens).select_related("hold")
    }
    found: dict[str, list[str]] = {"answered_not_recorded": [], "approved_not_held": []}
    found["declined_but_held"], found["unanswered_still_held"] = [], []
    for answer in answers:
        decision = decisions.get(answer["token"])
        if answer["status"] in (200, 402) and decision is None:
            found["answered_not_recorded"].append(answer["token"])
        elif answer["status"] == 200 and (decision.outcome != "approved" or decision.hold is None):
            found["approved_not_held"].append(f"{answer['token']}: {decision.outcome}")
        elif answer["status"] == 402 and decision.hold is not None and decision.hold.is_open:
            found["declined_but_held"].append(answer["token"])
        elif answer["status"] is None and decision and decision.hold and decision.hold.is_open:
            found["unanswered_still_held"].append(answer["token"])  # Marqeta said: timed out
    return found


def approvals_by_prefix(prefix: str) -> dict[str, int]:
    """Approvals of JIT tokens `<prefix>-…`: recorded (with their hold) or still in the outbox.

    Read with the ledger writers stopped, so no event moves from one place to the other
    between the two reads.
    """
    recorded = JitDecision.objects.filter(jit_funding_token__startswith=f"{prefix}-")
    client, in_outbox = maintenance_redis(), 0
    for stream in all_outbox_keys():
        start = "-"
        while page := client.xrange(stream, min=start, count=5_000):
            in_outbox += sum(
                fields.get("outcome") == "approved" and fields["jit"].startswith(f"{prefix}-")
                for _, fields in page
            )
            start = "(" + page[-1][0]
    return {
        "recorded": recorded.count(),
        "recorded_approved": recorded.filter(outcome="approved", hold__isnull=False).count(),
        "recorded_stand_in": recorded.filter(is_fallback=True).count(),
        "outbox_approved": in_outbox,
    }
