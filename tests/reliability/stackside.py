"""The harness's hands inside the private stack: `python -m tests.reliability.stackside CMD`.

Run by `Stack.stackside` with the stack's environment (its DATABASE_URL, REDIS_URL, broker),
so every read and write goes through the platform's own Django code, never the test suite's
database. Each command prints one JSON line.

    seed --cold N        the bench population (1 hot, 1 drain, N cold cardholders with cards
                         and deposits, through cards.services), the stand-in policy, the cache
    check [--answers F]  the invariants (tests/reliability/invariants.py), and Marqeta's
                         answers in file F against the ledger
    pull                 queue the beat task that pulls clearing files (and re-queues stalled
                         ones), on the stack's Celery broker
    tally P [P ...]      approvals of the JIT tokens `P-…`: recorded, or still in the outbox
"""

from __future__ import annotations

import argparse
import json
import sys

import django

STANDIN_POLICY = {
    "mode": "APPROVE_UP_TO",
    "standin_max_transaction_minor": 5_000,  # 50.00 a stand-in
    "standin_max_daily_per_card_minor": 20_000,
    "deadline_ms": 250,
    "redis_timeout_ms": 150,
    "breaker_failure_threshold": 3,
    "breaker_reset_seconds": 1,
}


def seed(cold: int) -> dict:
    """Cardholders through the services (bench/population.py), then the cache from the ledger."""
    from bench import population
    from cards.models import Program
    from cards.services import set_fallback_policy
    from jit.sync import rebuild_balance_cache

    population.seed(cold=cold, processes=2 if cold >= 1_000 else 1)
    program = Program.objects.get(name=population.PROGRAM)
    set_fallback_policy(program=program, actor=None, reason="reliability", **STANDIN_POLICY)
    report = rebuild_balance_cache()
    return {"accounts": report.accounts, "cards": report.cards}


def check(answers_file: str | None, with_cache: bool) -> dict:
    from tests.reliability.invariants import answers_against_ledger, ledger_invariants, leftovers

    found = {**ledger_invariants(with_cache=with_cache), **leftovers()}
    if answers_file:
        with open(answers_file) as answers:  # noqa: PTH123
            found |= answers_against_ledger(json.load(answers))
    return found


def pull() -> dict:
    from reconciliation.tasks import pull_clearing_files_task

    return {"task": pull_clearing_files_task.delay().id}


def tally(prefixes: list[str]) -> dict:
    from tests.reliability.invariants import approvals_by_prefix

    return {prefix: approvals_by_prefix(prefix) for prefix in prefixes}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="stackside")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("seed").add_argument("--cold", type=int, required=True)
    checking = commands.add_parser("check")
    checking.add_argument("--answers")
    checking.add_argument("--no-cache", action="store_true")
    commands.add_parser("pull")
    commands.add_parser("tally").add_argument("prefixes", nargs="+")
    args = parser.parse_args(argv)
    django.setup()
    if args.command == "seed":
        result = seed(args.cold)
    elif args.command == "check":
        result = check(args.answers, with_cache=not args.no_cache)
    elif args.command == "tally":
        result = tally(args.prefixes)
    else:
        result = pull()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
