"""Drive the load of `make bench-jit` against a running server and record what it measured.

    python bench/run.py --url http://127.0.0.1:8099 --run-dir var/bench/run \
        --server-pid PID --redis-pid PID [--duration 12] [--connections 32] ...

Stdlib only (no Django): it runs wrk (closed loop, bench/jit.lua) and bench/openloop.py (open
loop) and appends one JSON line per scenario to RUN_DIR/results.jsonl, with the CPU each part
used (server workers, Redis, PostgreSQL, the load generator) and the CPU used by everything
else on the machine (other people's work skews a 2-core benchmark; the report shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_PREFIXES = iter(range(1, 10_000))


def _prefix() -> str:
    """Short and unique in the run: jit_funding.token (and t + it) must fit in 36 chars."""
    stamp = int(time.time()) % 36**5
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    encoded = ""
    while stamp:
        stamp, rest = divmod(stamp, 36)
        encoded = digits[rest] + encoded
    return f"b{encoded}{next(_PREFIXES)}"


HZ = os.sysconf("SC_CLK_TCK")
ENDPOINTS = {
    "ours": "/jit/marqeta/",
    "lean": "/bench/lean/",
    "bare": "/bench/bare/",
    "naive": "/bench/naive/",
}


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ValueError):
            continue
    return found


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return pids


def _machine() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU used by each part between start() and stop(), and by the rest of the machine."""

    def __init__(self, server_pid: int, redis_pid: int) -> None:
        self.server_pid, self.redis_pid = server_pid, redis_pid

    def _groups(self) -> dict[str, list[int]]:
        return {
            "server": [self.server_pid, *_children(self.server_pid)],
            "redis": [self.redis_pid],
            "postgres": _postgres_pids(),
        }

    @staticmethod
    def _children_seconds() -> float:
        """CPU of this process's waited-for children: the load generator, once reaped."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def start(self) -> None:
        self.groups = self._groups()
        self.before = {name: {p: _ticks(p) for p in pids} for name, pids in self.groups.items()}
        self.children_before = self._children_seconds()
        self.machine_before, self.started = _machine(), time.monotonic()

    def stop(self, requests: int) -> dict:
        """Per part: share of one core, and CPU microseconds per request."""
        # Processes born during the run (a PostgreSQL backend for a new connection, a gunicorn
        # worker) count whole; ones that died during it are lost (no cgroup here).
        now = self._groups()
        after = {name: {p: _ticks(p) for p in pids} for name, pids in now.items()}
        elapsed = time.monotonic() - self.started
        busy, total = (b - a for b, a in zip(_machine(), self.machine_before, strict=True))
        cores = os.cpu_count() or 1
        cpu: dict = {"machine_busy_pct": round(100 * busy / max(total, 1), 1)}
        seconds = {
            name: sum(
                max(0, ticks - self.before[name].get(p, 0)) for p, ticks in after[name].items()
            )
            / HZ
            for name in after
        }
        seconds["generator"] = self._children_seconds() - self.children_before
        for name, used in seconds.items():
            cpu[f"{name}_cores"] = round(used / elapsed, 2)
            cpu[f"{name}_us_per_request"] = round(used * 1e6 / max(requests, 1))
        # busy jiffies are summed over all CPUs: turn them into "cores" like the rest
        machine_cores = busy / max(total, 1) * cores
        cpu["other_cores"] = round(max(0.0, machine_cores - sum(seconds.values()) / elapsed), 2)
        return cpu


def wrk(
    args: argparse.Namespace,
    meter: CpuMeter,
    name: str,
    endpoint: str,
    users: str,
    duration: float,
    amount: str = "0.01",
    record: bool = True,
    round_number: int = 1,
) -> dict | None:
    run = Path(args.run_dir)
    out = run / ("results.jsonl" if record else "warmup.jsonl")
    prefix = _prefix()
    command = [
        *args.generator_pin.split(),
        "wrk",
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "jit.lua"),
        args.url + ENDPOINTS[endpoint],
        "--",
        str(run / "body.json"),
        str(run / f"users-{users}.txt"),
        "hot" if users != "cold" else "cold",
        prefix,
        (run / "auth.txt").read_text().strip(),
        amount,
        name,
        str(out),
    ]
    before = out.read_text().count("\n") if out.exists() else 0
    meter.start()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, errors = process.communicate()
    lines = out.read_text().splitlines() if out.exists() else []
    if process.returncode != 0 or len(lines) <= before:
        sys.exit(f"wrk failed for {name} (exit {process.returncode}): {errors.strip()[-300:]}")
    result = json.loads(lines[-1])
    result.update(
        endpoint=endpoint,
        users=users,
        loop="closed",
        amount=amount,
        round=round_number,
        connections=args.connections,
    )
    result["cpu"] = meter.stop(result["requests"])
    if errors.strip():
        result["stderr"] = errors.strip()[:500]
    _rewrite_last(out, result)  # warm-ups too: their approvals count in the overspend check
    if record:
        _show(result)
    return result


def openloop(
    args: argparse.Namespace, meter: CpuMeter, name: str, endpoint: str, users: str, rate: float
) -> dict:
    run = Path(args.run_dir)
    out = run / "results.jsonl"
    command = [
        *args.generator_pin.split(),
        sys.executable,
        str(HERE / "openloop.py"),
        "--url",
        args.url + ENDPOINTS[endpoint],
        "--rate",
        str(rate),
        "--duration",
        str(args.open_duration),
        "--template",
        str(run / "body.json"),
        "--users",
        str(run / f"users-{users}.txt"),
        "--mode",
        users,
        "--prefix",
        _prefix(),
        "--auth",
        (run / "auth.txt").read_text().strip(),
        "--scenario",
        name,
        "--results",
        str(out),
        "--connections",
        str(args.open_connections),
    ]
    meter.start()  # includes building the bodies (about a second of the generator's CPU)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, errors = process.communicate()
    if process.returncode != 0:
        sys.exit(f"open-loop generator failed for {name}: {errors.strip()}")
    result = json.loads(out.read_text().splitlines()[-1])
    result.update(endpoint=endpoint, users=users, loop="open", amount="0.01")
    result["cpu"] = meter.stop(result["completed"])
    _rewrite_last(out, result)
    _show(result)
    return result


def _rewrite_last(path: Path, result: dict) -> None:
    lines = path.read_text().splitlines()
    lines[-1] = json.dumps(result)
    path.write_text("\n".join(lines) + "\n")


def _show(result: dict) -> None:
    cpu = result["cpu"]
    print(
        f"  {result['scenario']:<22} {result['rps']:8.0f} req/s  p50 {result['p50_us'] / 1e3:6.2f}"
        f"  p99 {result['p99_us'] / 1e3:7.2f}  p99.9 {result['p999_us'] / 1e3:7.2f} ms"
        f"  200={result['status_200']} 402={result['status_402']} other={result['status_other']}"
        f"  | cpu: server {cpu['server_cores']} redis {cpu['redis_cores']}"
        f" pg {cpu['postgres_cores']} gen {cpu['generator_cores']}"
        f" OTHER {cpu['other_cores']} cores",
        flush=True,
    )


def wait_for_quiet(limit: float, threshold: float = 0.25, sample: float = 1.0) -> float:
    """Wait (at most `limit` s) until the machine is nearly idle before measuring; returns the
    busy cores seen last. Other people's work on a 2-core machine skews every number."""
    deadline = time.monotonic() + limit
    while True:
        busy_before, total_before = _machine()
        time.sleep(sample)
        busy, total = (b - a for b, a in zip(_machine(), (busy_before, total_before), strict=True))
        cores = busy / max(total, 1) * (os.cpu_count() or 1)
        if cores <= threshold or time.monotonic() >= deadline:
            return cores
        print(f"  machine busy ({cores:.2f} cores used by others); waiting", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--redis-pid", type=int, required=True)
    parser.add_argument("--duration", type=float, default=12)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--generator-pin", default="", help='e.g. "taskset -c 1"')
    parser.add_argument(
        "--open", default="1000:hot,1000:cold,500:hot", help="open-loop runs, rate:accounts"
    )
    parser.add_argument("--open-duration", type=float, default=15)
    parser.add_argument("--open-connections", type=int, default=64)
    parser.add_argument("--drain-duration", type=float, default=2)
    parser.add_argument("--quiet-wait", type=float, default=60, help="before starting")
    parser.add_argument("--scenario-quiet-wait", type=float, default=15, help="before each")
    parser.add_argument("--rounds", type=int, default=1, help="closed-loop rounds (best kept)")
    parser.add_argument("--skip", default="", help="comma-separated scenario names to skip")
    args = parser.parse_args()
    meter = CpuMeter(args.server_pid, args.redis_pid)
    skip = set(filter(None, args.skip.split(",")))
    duration = args.duration

    busy = wait_for_quiet(args.quiet_wait)
    print(f"machine load before starting: {busy:.2f} cores", flush=True)
    print("warm-up (not recorded)", flush=True)
    for endpoint in ("bare", "lean", "ours", "naive"):
        wrk(args, meter, f"warmup-{endpoint}", endpoint, "hot", args.warmup, record=False)
    print(f"closed loop: wrk, {args.connections} connections, {duration:g} s each", flush=True)
    scenarios = [
        ("bare|hot", "bare", "hot"),
        ("ours|hot", "ours", "hot"),
        ("ours|cold", "ours", "cold"),
        ("lean|hot", "lean", "hot"),
        ("naive|hot", "naive", "hot"),
        ("naive|cold", "naive", "cold"),
    ]
    for round_number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f" round {round_number} of {args.rounds}", flush=True)
        for name, endpoint, users in scenarios:
            if name not in skip:
                wait_for_quiet(args.scenario_quiet_wait)
                wrk(args, meter, name, endpoint, users, duration, round_number=round_number)
    if "ours|drain" not in skip:
        print(
            f"overspend: {args.drain_duration:g} s of 1.00 authorizations on one 500.00 account",
            flush=True,
        )
        wait_for_quiet(args.scenario_quiet_wait)
        wrk(args, meter, "ours|drain", "ours", "drain", args.drain_duration, amount="1.00")
    print(f"open loop: {args.open_duration:g} s per rate (Python asyncio generator)", flush=True)
    for run in filter(None, args.open.split(",")):
        rate, _, users = run.partition(":")
        name = f"ours|open-{float(rate):g}-{users}"
        if name not in skip:
            wait_for_quiet(args.scenario_quiet_wait)
            openloop(args, meter, name, "ours", users, float(rate))


if __name__ == "__main__":
    main()
