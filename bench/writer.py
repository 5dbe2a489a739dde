"""`make bench-writer`: the ledger writer, set-based (`write_batch`) against one by one.

One by one is the path every event took before the set-based one: `apply_event` in a savepoint
of its own, a batch of them in one transaction (it is still the path of incrementals, advices
and captures). Both run in this process, on the same kind of outbox, interleaved batch by batch
so that the machine's other load falls on both alike:

    seed     two cohorts (A, B) of BENCH_WRITER_CARDHOLDERS cardholders with a card and a
             deposit, through the services; the cache loaded by `rebuild_balance_cache`
    decide   BENCH_WRITER_EVENTS decisions per cohort through the gateway's own decision
             (`decide_jit_funding`), the same random sequence for both: ~85 % first
             authorizations (some declined once a cardholder runs low), ~10 % declines for
             more than the balance, ~5 % reversals of an earlier approval
    write    A one by one, B by `write_batch`, BENCH_WRITER_BATCH events a transaction
    check    both ledgers consistent and the same, cardholder by cardholder

Runs on a database of its own (config.settings.bench, BENCH_DATABASE_NAME) and Redis DB 12.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402
from django.db.models import Count, Q  # noqa: E402

from bench.management.commands.bench_load import AMOUNT, CARD, JIT, TXN, USER, body_template  # noqa: E402
from cards import services as cards  # noqa: E402
from jit.marqeta import parse_jit_request  # noqa: E402
from jit.outbox import (  # noqa: E402
    OutboxEvent,
    Wallets,
    acknowledge,
    apply_in_savepoint,
    ensure_groups,
    read_batch,
    write_batch,
)
from jit.redis_client import maintenance_redis  # noqa: E402
from jit.services import decide_jit_funding, now_us  # noqa: E402
from jit.sync import rebuild_balance_cache  # noqa: E402
from ledger.models import Wallet  # noqa: E402
from ledger.selectors import (  # noqa: E402
    drifted_running_balances,
    holds_out_of_step,
    unbalanced_transactions,
)

EVENTS = int(os.environ.get("BENCH_WRITER_EVENTS", "10000"))
CARDHOLDERS = int(os.environ.get("BENCH_WRITER_CARDHOLDERS", "200"))
BATCH = int(os.environ.get("BENCH_WRITER_BATCH", "500"))
DEPOSIT_MINOR = 1_000_00
COHORTS = ("wa", "wb")


def user(cohort: str, number: int) -> str:
    return f"{cohort}_u{number:04d}"


def seed() -> None:
    program = cards.create_program(name="bench-writer", currency_code="USD", timezone_name="UTC")
    for cohort in COHORTS:
        for number in range(CARDHOLDERS):
            cardholder = cards.create_cardholder(program=program, token=user(cohort, number))
            cards.create_card(cardholder=cardholder, token=f"{cohort}_c{number:04d}")
            cards.deposit_funds(
                cardholder=cardholder,
                amount_minor=DEPOSIT_MINOR,
                idempotency_key=f"seed-{cohort}-{number}",
                actor="bench",
            )
    rebuild_balance_cache()


def script() -> list[tuple[int, str, int, int | None]]:
    """(cardholder, method, amount, index of the reversed step): one sequence for both."""
    rng, steps, approvable = random.Random(7), [], []
    for index in range(EVENTS):
        number, roll = rng.randrange(CARDHOLDERS), rng.random()
        if roll < 0.05 and approvable:
            reversed_index = approvable.pop(rng.randrange(len(approvable)))
            original = steps[reversed_index]
            steps.append((original[0], "pgfs.authorization.reversal", original[2], reversed_index))
        elif roll < 0.15:
            steps.append((number, "pgfs.authorization", 5_000_00, None))  # more than it has
        else:
            steps.append((number, "pgfs.authorization", rng.randrange(100, 6_000), None))
            approvable.append(index)
    return steps


def body(cohort: str, index: int, step: tuple[int, str, int, int | None], template: str) -> bytes:
    number, method, amount_minor, reversed_index = step
    text = template.replace(USER, user(cohort, number)).replace(CARD, f"{cohort}_c{number:04d}")
    text = text.replace(JIT, f"{cohort}-j{index}").replace(TXN, f"{cohort}-t{index}")
    document = json.loads(text.replace(AMOUNT, f"{amount_minor // 100}.{amount_minor % 100:02d}"))
    funding = document["gpa_order"]["jit_funding"]
    funding["method"] = method
    if reversed_index is not None:
        funding["original_jit_funding_token"] = f"{cohort}-j{reversed_index}"
    return json.dumps(document).encode()


def decide(steps: list[tuple[int, str, int, int | None]]) -> dict[str, list[OutboxEvent]]:
    template = body_template()
    for index, step in enumerate(steps):
        for cohort in COHORTS:
            decide_jit_funding(
                parse_jit_request(body(cohort, index, step, template)), received_at_us=now_us()
            )
    client = maintenance_redis()
    ensure_groups(client)
    events: dict[str, list[OutboxEvent]] = {cohort: [] for cohort in COHORTS}
    for event in read_batch(client, consumer="bench", count=2 * len(steps), block_ms=0):
        events[event.meta["user"].split("_")[0]].append(event)
    return events


def one_by_one(events: list[OutboxEvent]) -> None:
    """The writer before the set-based path: each event in its own savepoint."""
    wallets = Wallets()
    with transaction.atomic():
        for event in events:
            apply_in_savepoint(event, wallets)
    acknowledge(maintenance_redis(), events)


def write(events: dict[str, list[OutboxEvent]]) -> dict[str, float]:
    seconds = dict.fromkeys(COHORTS, 0.0)
    paths = {"wa": one_by_one, "wb": lambda chunk: write_batch(maintenance_redis(), chunk)}
    for start in range(0, max(len(found) for found in events.values()), BATCH):
        for cohort in COHORTS:
            chunk = events[cohort][start : start + BATCH]
            began = time.perf_counter()
            paths[cohort](chunk)
            seconds[cohort] += time.perf_counter() - began
    return seconds


def ledger_of(cohort: str) -> list[tuple]:
    """Per cardholder, in number order: balances and what the writer recorded."""
    wallets = Wallet.objects.filter(holder_token__startswith=f"{cohort}_").select_related(
        "available", "held"
    )
    counts = wallets.annotate(
        open_holds=Count("holds", filter=Q(holds__status="open")),
        holds_total=Count("holds"),
    )
    return sorted(
        (
            wallet.holder_token.split("_", 1)[1],
            wallet.available.balance_minor,
            wallet.held.balance_minor,
            wallet.open_holds,
            wallet.holds_total,
        )
        for wallet in counts
    )


def main() -> None:
    seed()
    steps = script()
    began = time.perf_counter()
    events = decide(steps)
    decided = time.perf_counter() - began
    seconds = write(events)
    consistent = not (
        unbalanced_transactions() or drifted_running_balances() or holds_out_of_step()
    )
    same = ledger_of("wa") == ledger_of("wb")
    rate = {cohort: len(events[cohort]) / seconds[cohort] for cohort in COHORTS}
    lines = [
        f"ledger writer, {len(events['wa'])} events per path, batches of {BATCH}, "
        f"{CARDHOLDERS} cardholders per cohort (decided in {decided:.1f} s)",
        "| path | events | seconds | events/s |",
        "|---|---:|---:|---:|",
        f"| one by one (before) | {len(events['wa'])} | {seconds['wa']:.2f} | {rate['wa']:,.0f} |",
        f"| write_batch (set-based) | {len(events['wb'])} | {seconds['wb']:.2f} "
        f"| {rate['wb']:,.0f} |",
        f"set-based / one by one: {rate['wb'] / rate['wa']:.2f}x; "
        f"ledger consistent: {'yes' if consistent else 'NO'}; "
        f"same ledger: {'yes' if same else 'NO'}",
    ]
    print("\n".join(lines))
    if not (consistent and same):
        sys.exit(1)


if __name__ == "__main__":
    main()
