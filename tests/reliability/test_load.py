"""Sustained load: half the measured peak (docs/benchmarks.md), one hot account and many cold
ones, for minutes in `make reliability`. Memory of the web workers and the ledger writers and
the outbox lag are sampled over time and reported with the latency percentiles; the test
asserts only what must hold whatever the machine's speed: no approval lost, the invariants,
and no gross memory leak.

The load comes from the bench's open-loop generator (bench/openloop.py: each request
scheduled at start + i / rate, latency counted from that time, so queueing shows), run as
two processes: the hot share on the hot account, the rest spread over the cold ones.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench import population
from bench.management.commands.bench_load import body_template
from tests.reliability.checks import assert_clean, lag, replay_spool, report_line, wait_for_drain
from tests.reliability.stack import JIT_CREDENTIALS, PY, ROOT, Stack, rss_kib

pytestmark = pytest.mark.reliability
GROSS_LEAK_KIB = 256 * 1024  # a web worker growing by this much under load is a leak


@dataclass
class Samples:
    """Memory (KiB) and outbox lag over time, taken by a background thread."""

    stack: Stack
    every: float
    rows: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.rows.append(
                {
                    "at": round(time.monotonic() - started, 1),
                    "web": [rss_kib(pid) for pid in self.stack.web_worker_pids()],
                    "writers": [rss_kib(writer.pid) for writer in self.stack.writers],
                    "lag": lag(self.stack),
                    "redis": int(self.stack.redis.client().info("memory")["used_memory"]),
                }
            )
            self._stop.wait(self.every)

    def __enter__(self) -> Samples:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def web_growth_kib(self) -> list[int]:
        """Per web worker (by position): last sample minus first."""
        first, last = self.rows[0]["web"], self.rows[-1]["web"]
        return [end - start for start, end in zip(first, last, strict=False)]

    def lag_per_second(self) -> float:
        """How fast the outbox grew (positive) or shrank over the run."""
        span = max(self.rows[-1]["at"] - self.rows[0]["at"], 1e-9)
        return round((self.rows[-1]["lag"] - self.rows[0]["lag"]) / span, 1)


def generator_inputs(stack: Stack, directory: Path) -> dict[str, Path | str]:
    """The bench generator's inputs: the Example 1 body template, the accounts, the auth."""
    directory.mkdir(exist_ok=True)
    (directory / "body.json").write_text(body_template())
    (directory / "users-hot.txt").write_text(f"{population.HOT_USER} {population.HOT_CARD}\n")
    cold = [
        f"{population.cold_user(n)} {population.cold_card(n)}" for n in range(stack.cold_accounts)
    ]
    (directory / "users-cold.txt").write_text("\n".join(cold) + "\n")
    auth = base64.b64encode(":".join(JIT_CREDENTIALS).encode()).decode()
    return {"dir": directory, "auth": f"Basic {auth}"}


def open_loop(stack: Stack, inputs: dict, *, prefix: str, mode: str, rate: float, seconds: float):
    results = inputs["dir"] / f"results-{mode}.jsonl"
    argv = [
        PY, str(ROOT / "bench" / "openloop.py"), "--url", f"{stack.base_url}/jit/marqeta/",
        "--rate", str(rate), "--duration", str(seconds),
        "--template", str(inputs["dir"] / "body.json"),
        "--users", str(inputs["dir"] / f"users-{mode}.txt"), "--mode", mode,
        "--prefix", prefix, "--auth", inputs["auth"], "--scenario", f"reliability-{mode}",
        "--results", str(results),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603


def finished(process: subprocess.Popen) -> dict:
    out, errors = process.communicate(timeout=3_600)
    assert process.returncode == 0, errors
    return json.loads(out.strip().splitlines()[-1])


@dataclass(frozen=True, slots=True)
class Accounting:
    """One generator's approvals against what the platform has of them."""

    seen_approved: int  # answered 200
    counted: int  # approved in the ledger (with a hold) or still in the outbox
    unknown: int  # sent but not answered: Marqeta timed out; the script may have approved

    @property
    def lost(self) -> int:
        return max(0, self.seen_approved - self.counted)


def accounting(result: dict, counts: dict) -> Accounting:
    return Accounting(
        seen_approved=result["status_200"],
        counted=counts["recorded_approved"] + counts["outbox_approved"],
        unknown=result["requests"] - result["completed"] + result["errors"],
    )


def test_sustained_load_at_half_peak(stack, profile, run_id, tmp_path):
    inputs = generator_inputs(stack, tmp_path / "load")
    rates = {"hot": profile.load_rate * profile.load_hot_share}
    rates["cold"] = profile.load_rate - rates["hot"]
    prefixes = {mode: f"{run_id}{mode[0]}" for mode in rates}
    with Samples(stack, profile.sample_seconds) as samples:
        generators = {
            mode: open_loop(stack, inputs, prefix=prefixes[mode], mode=mode, rate=rate,
                            seconds=profile.load_seconds)
            for mode, rate in rates.items()
        }  # fmt: skip
        results = {mode: finished(process) for mode, process in generators.items()}
    for writer in stack.writers:  # a still picture: no event moves while it is counted
        writer.stop()
    replay_spool(stack)  # approvals the stand-in policy gave (Redis too slow to answer)
    tally = stack.stackside("tally", *prefixes.values())
    found = stack.stackside("check", "--no-cache")
    found.pop("outbox_events")  # the writers' backlog is what the tally counted
    stack.ensure_running()
    books = {mode: accounting(results[mode], tally[prefixes[mode]]) for mode in results}
    left = lag(stack)
    name = f"sustained load {profile.load_rate:.0f}/s for {profile.load_seconds:.0f} s"
    stand_ins = sum(counts["recorded_stand_in"] for counts in tally.values())
    report_line(f"{name} ({profile.name})", figures(results, books, samples, left, stand_ins))
    for book in books.values():
        assert book.lost == 0
        assert book.counted <= book.seen_approved + book.unknown  # nothing approved twice
    assert_clean(found)
    assert max(samples.web_growth_kib()) < GROSS_LEAK_KIB
    if left < 5_000:  # a short run: the writers catch up, then the cache must equal the ledger
        wait_for_drain(stack)
        assert_clean(stack.stackside("check"))


def _from_to(first: list[int], last: list[int]) -> str:
    return "/".join(f"{a // 1024}->{b // 1024}" for a, b in zip(first, last, strict=False))


def figures(results: dict, books: dict, samples: Samples, left: int, stand_ins: int) -> dict:
    """The report line: rates and latency per generator, losses, memory and lag over time."""
    rows = samples.rows
    per_mode = {}
    for mode, result in results.items():
        per_mode |= {
            f"{mode}_rps": round(result["rps"]),
            f"{mode}_p50_ms": round(result["p50_us"] / 1000, 1),
            f"{mode}_p99_ms": round(result["p99_us"] / 1000, 1),
        }
    return {
        **per_mode,
        "sent": sum(r["requests"] for r in results.values()),
        "approved": sum(r["status_200"] for r in results.values()),
        "unfinished": sum(r["requests"] - r["completed"] for r in results.values()),
        "errors": sum(r["errors"] + r["status_other"] for r in results.values()),
        "stand_in": stand_ins,
        "lost": sum(book.lost for book in books.values()),
        "web_rss_mib": _from_to(rows[0]["web"], rows[-1]["web"]),
        "writer_rss_mib": _from_to(rows[0]["writers"], rows[-1]["writers"]),
        "outbox_lag": f"{rows[0]['lag']}->{rows[-1]['lag']}(max {max(r['lag'] for r in rows)})",
        "lag_growth_per_s": samples.lag_per_second(),
        "redis_mib": f"{rows[0]['redis'] // 2**20}->{rows[-1]['redis'] // 2**20}",
        "left_in_outbox": left,
    }
