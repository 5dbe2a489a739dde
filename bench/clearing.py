"""`make bench-clearing`: clearing-file ingestion, end to end, against its ceiling and floor.

Each phase runs in its own process (so its peak RSS is its own), on a bench-only database
(name contains "bench", dropped and recreated by bench/clearing.sh), with config.settings.bench:

    populate   programs, cardholders, cards and deposits through the services; then the holds
               the file will clear, in bulk SQL (bench-only: a million `place_hold` calls take
               hours), with their ledger transactions, entries and running balances
    generate   the clearing file (MARQETA.md §12), written streaming: exact, partial, over,
               multi-clearing, force-post, refund and unmatched lines in realistic shares
    ceiling    a bare `csv.reader` over the file, and our streaming parser (read_rows)
    ingest     the real thing: register + ingest_clearing_file (check, match, post, exceptions)
    naive      line by line, autocommit, one ORM lookup and one ledger service call per line
    compare    the ledger's state after `ingest` and after `naive` on the same sample

Results are JSON lines in $BENCH_CLEARING_OUT/results.jsonl; `report` prints the table.
"""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from cards.models import Card  # noqa: E402
from cards.selectors import funding_account_for  # noqa: E402
from cards.services import create_card, create_cardholder, create_program, deposit_funds  # noqa: E402
from config.errors import DomainError  # noqa: E402
from ledger import services as ledger  # noqa: E402
from ledger.models import Account, Hold  # noqa: E402
from ledger.selectors import (  # noqa: E402
    drifted_running_balances,
    holds_out_of_step,
    unbalanced_transactions,
)
from reconciliation.clearing import ingest_clearing_file, register_clearing_file  # noqa: E402
from reconciliation.clearing_csv import HEADER, ControlTotals, read_rows, text_stream  # noqa: E402
from reconciliation.inbox import open_inbox  # noqa: E402

OUT = Path(os.environ.get("BENCH_CLEARING_OUT", settings.BASE_DIR / "var" / "bench" / "clearing"))
PROGRAM = "bench-clearing"
MCCS = [("5812", "CAFE"), ("5411", "GROCER"), ("5541", "FUEL STOP"), ("7011", "HOTEL")]
SHARES = [  # (kind, share of lines): a day of a debit program, roughly
    ("exact", 0.78),
    ("partial", 0.05),
    ("over", 0.05),
    ("multi", 0.06),  # two lines per authorization
    ("force", 0.03),
    ("refund", 0.01),
    ("unmatched", 0.02),
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def record(phase: str, **values: Any) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    values = {"phase": phase, "peak_rss_mb": round(peak_rss_mb(), 1), **values}
    with (OUT / "results.jsonl").open("a") as results:
        results.write(json.dumps(values) + "\n")
    print(json.dumps(values), flush=True)


# --- populate + generate -------------------------------------------------------------------------


def plan(lines: int, seed: int = 7) -> Iterator[tuple[str, int, int]]:
    """(kind, hold amount, other amount) per authorization or standalone line, until `lines`
    detail rows; the same sequence for the holds and for the file."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in SHARES]
    weights = [share for _, share in SHARES]
    made = 0
    while made < lines:
        kind = rng.choices(kinds, weights)[0]
        if kind == "multi" and lines - made < 2:
            kind = "exact"
        made += 2 if kind == "multi" else 1
        yield kind, rng.randint(100, 50_000), rng.randint(100, 9_000)


def populate(*, cardholders: int, lines: int) -> None:
    started = time.perf_counter()
    program = create_program(name=PROGRAM, currency_code="USD")
    holders = []
    for n in range(cardholders):
        cardholder = create_cardholder(program=program, token=f"bench_user_{n:06d}")
        create_card(
            cardholder=cardholder, token=f"bench_card_{n:06d}", last_four=f"{n % 10000:04d}"
        )
        deposit_funds(
            cardholder=cardholder,
            amount_minor=10**12,
            idempotency_key=f"bench-seed-{n}",
            actor="bench",
        )
        holders.append(funding_account_for(cardholder=cardholder).wallet)
    configured = time.perf_counter() - started
    holds = _bulk_holds(holders, lines=lines)
    record(
        "populate",
        cardholders=cardholders,
        holds=holds,
        configure_s=round(configured, 1),
        holds_s=round(time.perf_counter() - started - configured, 1),
    )


def _hold_rows(wallets: list, lines: int) -> Iterator[tuple[int, int, int, str, str]]:
    """One hold per authorization the file will name: (n, wallet, amount, mcc, merchant)."""
    for n, (kind, amount, _) in enumerate(plan(lines)):
        if kind in ("exact", "partial", "over", "multi"):
            mcc, merchant = MCCS[n % len(MCCS)]
            yield n, n % len(wallets), amount, mcc, merchant


def _bulk_holds(wallets: list, *, lines: int) -> int:
    """Holds as `place_hold` would write them, set-based: COPY into a staging table, then
    transactions, entries (available -> held), holds and running balances in four statements."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_hold (n bigint, wallet_id bigint, available_id bigint,"
            " held_id bigint, amount bigint, mcc text, merchant text, card text) ON COMMIT DROP"
        )
        count = 0
        with cursor.connection.cursor().copy("COPY bench_hold FROM STDIN") as copy:
            for n, holder, amount, mcc, merchant in _hold_rows(wallets, lines):
                wallet, card = wallets[holder], f"bench_card_{holder:06d}"
                copy.write_row(
                    (n, wallet.pk, wallet.available_id, wallet.held_id, amount, mcc, merchant, card)
                )
                count += 1
        cursor.execute(
            "INSERT INTO ledger_ledgertransaction (kind, idempotency_key, actor, memo, metadata,"
            " created_at) SELECT 'hold', 'hold:jit:bench-jit-' || n, 'jit-gateway', merchant,"
            " '{}', now() FROM bench_hold"
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_posted ON COMMIT DROP AS SELECT h.*, t.id AS txn_id"
            " FROM bench_hold h JOIN ledger_ledgertransaction t"
            " ON t.idempotency_key = 'hold:jit:bench-jit-' || h.n"
        )
        cursor.execute(
            "INSERT INTO ledger_ledgerentry (transaction_id, account_id, amount_minor,"
            " currency_code) SELECT txn_id, available_id, amount, 'USD' FROM bench_posted"
            " UNION ALL SELECT txn_id, held_id, -amount, 'USD' FROM bench_posted"
        )
        cursor.execute(
            "INSERT INTO ledger_hold (wallet_id, authorization_key, amount_minor, remaining_minor,"
            " currency_code, status, expires_at, card_token, transaction_token,"
            " jit_funding_token, mcc, merchant_name, is_standin, placed_by_id, created_at)"
            " SELECT wallet_id, 'jit:bench-jit-' || n, amount, amount, 'USD', 'open',"
            " now() + interval '30 days',"
            " card, 'bench-txn-' || n, 'bench-jit-' || n, mcc, merchant, false, txn_id, now()"
            " FROM bench_posted"
        )
        cursor.execute(
            "UPDATE ledger_account a SET balance_minor = a.balance_minor + d.delta FROM ("
            " SELECT available_id AS id, -SUM(amount) AS delta FROM bench_posted GROUP BY 1"
            " UNION ALL SELECT held_id, SUM(amount) FROM bench_posted GROUP BY 1) d"
            " WHERE a.id = d.id"
        )
    return count


def generate(*, lines: int, path: Path) -> None:
    """The file, streaming; the same plan as the holds, so tokens and amounts line up."""
    started = time.perf_counter()
    wallets = int(os.environ.get("BENCH_CLEARING_CARDHOLDERS", "500"))
    path.parent.mkdir(parents=True, exist_ok=True)
    net, count = 0, 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for n, (kind, amount, other) in enumerate(plan(lines)):
            holder = n % wallets
            mcc, merchant = MCCS[n % len(MCCS)]
            auth = {"preceding": f"bench-txn-{n}", "original": f"bench-jit-{n}"}
            rows = []
            if kind == "exact":
                rows = [("authorization.clearing", amount, "true", auth)]
            elif kind == "partial":
                rows = [("authorization.clearing", max(1, amount * 7 // 10), "true", auth)]
            elif kind == "over":
                rows = [("authorization.clearing", amount * 115 // 100, "true", auth)]
            elif kind == "multi":
                first = max(1, amount // 2)
                rows = [
                    ("authorization.clearing", first, "false", auth),
                    ("authorization.clearing", max(1, amount - first), "true", auth),
                ]
            elif kind == "force":
                rows = [("authorization.clearing", other, "", {})]
            elif kind == "refund":
                rows = [("refund.authorization.clearing", other, "", {})]
            else:  # unmatched: names an authorization nobody has, at a merchant no hold has
                missing = {"preceding": f"bench-missing-{n}", "original": ""}
                rows = [("authorization.clearing", other, "true", missing)]
                mcc, merchant = "0000", "NOWHERE"
            for part, (record_type, minor, final, link) in enumerate(rows):
                credit = record_type.startswith("refund")
                token = f"bench-clr-{n}-{part}"
                writer.writerow(
                    [
                        record_type,
                        token,
                        f"nrid-{n}",
                        link.get("preceding", ""),
                        f"bench-jitc-{n}-{part}",
                        link.get("original", ""),
                        f"bench_card_{holder:06d}",
                        f"bench_user_{holder:06d}",
                        f"{minor // 100}.{minor % 100:02d}",
                        "C" if credit else "D",
                        "USD",
                        "2026-05-09",
                        final,
                        "",
                        mcc,
                        merchant,
                    ]
                )
                net += -minor if credit else minor
                count += 1
        sign = "D" if net >= 0 else "C"
        net = abs(net)
        empty = [""] * 6
        writer.writerow(
            ["TRAILER", str(count), *empty, f"{net // 100}.{net % 100:02d}", sign, *empty]
        )
    record(
        "generate",
        lines=count,
        bytes=path.stat().st_size,
        seconds=round(time.perf_counter() - started, 2),
    )


def head(source: Path, target: Path, *, lines: int) -> None:
    """The first `lines` detail rows of a file, with a trailer of their own."""
    rows, net = 0, 0
    with source.open(newline="") as src, target.open("w", newline="") as out:
        reader, writer = csv.reader(src), csv.writer(out, lineterminator="\n")
        writer.writerow(next(reader))
        for fields in reader:
            if fields[0] == "TRAILER" or rows == lines:
                break
            writer.writerow(fields)
            units, cents = fields[8].split(".")
            minor = int(units) * 100 + int(cents)
            net += -minor if fields[9] == "C" else minor
            rows += 1
        empty = [""] * 6
        sign, net = ("D" if net >= 0 else "C"), abs(net)
        writer.writerow(
            ["TRAILER", str(rows), *empty, f"{net // 100}.{net % 100:02d}", sign, *empty]
        )


# --- ceiling, ingest, naive ----------------------------------------------------------------------


def ceiling(path: Path) -> None:
    started = time.perf_counter()
    with path.open(newline="") as stream:
        count = sum(1 for _ in csv.reader(stream))
    bare = time.perf_counter() - started
    started = time.perf_counter()
    totals = ControlTotals()
    with path.open("rb") as raw, text_stream(raw) as stream:
        for row in read_rows(stream):
            totals.add(row)
    parsed = time.perf_counter() - started
    record(
        "ceiling",
        lines=count - 2,  # the header and the trailer are not lines
        csv_reader_lines_per_s=round((count - 2) / bare),
        read_rows_lines_per_s=round(totals.count / parsed),
        trailer_check=totals.trailer_check()[0],
    )


def ingest(path: Path, *, label: str) -> None:
    """Register the file from an inbox of its own and ingest it, as `pull_clearing_files` does."""
    inbox = OUT / f"inbox-{label}"
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / path.name
    shutil.copyfile(path, target)  # streams; the inbox moves it to processed/
    box = open_inbox(str(inbox))
    started = time.perf_counter()
    (inbox_file,) = [f for f in box.new_files() if f.name == path.name]
    clearing_file = register_clearing_file(inbox=box, inbox_file=inbox_file, enqueue=False)
    clearing_file = ingest_clearing_file(clearing_file=clearing_file.clearing_file)
    seconds = time.perf_counter() - started
    record(
        "ingest",
        label=label,
        status=clearing_file.status,
        lines=clearing_file.lines_total,
        applied=clearing_file.lines_applied,
        failed=clearing_file.lines_failed,
        flagged=clearing_file.lines_flagged,
        seconds=round(seconds, 1),
        lines_per_s=round((clearing_file.lines_total or 0) / seconds, 1),
        batch_lines=settings.CLEARING_BATCH_LINES,
    )


def naive(path: Path) -> None:
    """The floor: autocommit, per line a lookup and a ledger service, no batching, no records."""
    started, lines = time.perf_counter(), 0
    with path.open(newline="") as stream:
        for fields in csv.DictReader(stream):
            if fields["record_type"] == "TRAILER":
                break
            lines += 1
            card = Card.objects.select_related("cardholder").get(token=fields["card_token"])
            wallet = funding_account_for(cardholder=card.cardholder).wallet
            units, cents = fields["amount"].split(".")
            amount = int(units) * 100 + int(cents)
            key = fields["transaction_token"]
            try:
                if fields["debit_credit"] == "C":
                    ledger.refund(wallet=wallet, amount_minor=amount, refund_key=key)
                    continue
                original = fields["original_jit_funding_token"]
                preceding = fields["preceding_related_transaction_token"]
                hold = Hold.objects.filter(authorization_key=f"jit:{original}").first()
                if hold is None and preceding:
                    hold = Hold.objects.filter(transaction_token=preceding).first()
                if hold is not None:
                    ledger.clear_hold(
                        hold=hold,
                        amount_minor=amount,
                        clearing_key=key,
                        is_final=fields["is_final_clearing"] != "false",
                    )
                elif not (original or preceding):
                    ledger.force_post(wallet=wallet, amount_minor=amount, clearing_key=key)
            except DomainError:
                pass
    seconds = time.perf_counter() - started
    record("naive", lines=lines, seconds=round(seconds, 1), lines_per_s=round(lines / seconds, 1))


def fingerprint(label: str) -> None:
    """What the ledger holds: every account balance and every hold's state."""
    accounts = dict(Account.objects.values_list("code", "balance_minor"))
    holds = {
        key: [status, remaining]
        for key, status, remaining in Hold.objects.values_list(
            "authorization_key", "status", "remaining_minor"
        )
    }
    consistent = not (
        unbalanced_transactions() or drifted_running_balances() or holds_out_of_step()
    )
    (OUT / f"fingerprint-{label}.json").write_text(
        json.dumps({"accounts": accounts, "holds": holds}, sort_keys=True)
    )
    record(
        "fingerprint", label=label, accounts=len(accounts), holds=len(holds), consistent=consistent
    )


def compare() -> None:
    real = json.loads((OUT / "fingerprint-sample-real.json").read_text())
    floor = json.loads((OUT / "fingerprint-sample-naive.json").read_text())
    differing = [
        code for code, value in real["accounts"].items() if floor["accounts"].get(code) != value
    ]
    holds = [key for key, value in real["holds"].items() if floor["holds"].get(key) != value]
    record(
        "compare",
        same_ledger=not differing and not holds,
        accounts_differ=differing[:5],
        holds_differ=holds[:5],
    )


def report() -> None:
    results = [json.loads(line) for line in (OUT / "results.jsonl").read_text().splitlines()]
    by = {(r["phase"], r.get("label", "")): r for r in results}
    real, sample_real = by.get(("ingest", "full")), by.get(("ingest", "sample-real"))
    floor, top = by.get(("naive", "")), by.get(("ceiling", ""))
    print("\n| measure | lines | lines/s | peak RSS MB |\n|---|---:|---:|---:|")
    if top:
        lines, rss = f"{top['lines']:,}", top["peak_rss_mb"]
        print(f"| csv.reader (ceiling) | {lines} | {top['csv_reader_lines_per_s']:,} | {rss} |")
        print(f"| read_rows + totals (our parser) | {lines} | {top['read_rows_lines_per_s']:,} | |")
    for name, row in (
        ("ingest, full file", real),
        ("ingest, sample", sample_real),
        ("naive, sample (floor)", floor),
    ):
        if row:
            print(f"| {name} | {row['lines']:,} | {row['lines_per_s']:,} | {row['peak_rss_mb']} |")
    if sample_real and floor:
        ratio = sample_real["lines_per_s"] / floor["lines_per_s"]
        print(f"\nreal / naive on the sample: {ratio:.2f}x")
    if comparison := by.get(("compare", "")):
        print(f"same ledger result (sample): {comparison['same_ledger']}")
    if real:
        rate = real["lines_per_s"]
        verdict = "met" if rate >= 20_000 else f"NOT met ({20_000 / max(rate, 0.1):.0f}x short)"
        print(f"target 20,000 lines/s: {verdict} at {rate:,} lines/s")


def main(argv: list[str]) -> None:
    phase, args = argv[0], argv[1:]
    if phase == "populate":
        populate(cardholders=int(args[0]), lines=int(args[1]))
    elif phase == "generate":
        generate(lines=int(args[0]), path=Path(args[1]))
    elif phase == "head":
        head(Path(args[0]), Path(args[1]), lines=int(args[2]))
    elif phase == "ceiling":
        ceiling(Path(args[0]))
    elif phase == "ingest":
        ingest(Path(args[0]), label=args[1])
    elif phase == "naive":
        naive(Path(args[0]))
    elif phase == "fingerprint":
        fingerprint(args[0])
    elif phase == "compare":
        compare()
    elif phase == "report":
        report()
    else:
        raise SystemExit(f"unknown phase {phase}")


if __name__ == "__main__":
    main(sys.argv[1:])
