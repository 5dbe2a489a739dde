"""Open-loop load at a fixed rate, measured without coordinated omission.

    python bench/openloop.py --url http://127.0.0.1:8099/jit/marqeta/ --rate 1000 \
        --duration 15 --template body.json --users users-hot.txt --mode hot \
        --prefix ol1 --auth "Basic ..." --amount 0.01 --scenario name --results out.jsonl

Request i is scheduled at start + i / rate, whatever happened before it. Its latency is counted
from that scheduled time to the last byte of the answer, so a slow answer (or a late client)
shows up in every request queued behind it, as Marqeta would see it; a closed-loop tool that
waits for a free connection before starting the clock would hide it. Requests go out on a pool
of keep-alive connections (more are opened when all are busy, up to --connections).

The generator is Python (asyncio, stdlib only); wrk2 is not packaged by Debian. Its own
lateness (actual send time minus scheduled time) is reported next to the latencies, so its
contribution is visible: it is part of the measured latency, never subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from urllib.parse import urlsplit


def build_bodies(args: argparse.Namespace, count: int) -> list[bytes]:
    template = open(args.template).read()  # noqa: PTH123, SIM115 - stdlib-only script
    users = [line.split() for line in open(args.users) if line.strip()]  # noqa: PTH123, SIM115
    split = urlsplit(args.url)
    requests = []
    for number in range(count):
        user, card = users[0] if args.mode == "hot" else random.choice(users)
        jit = f"{args.prefix}-{number}"
        body = (
            template.replace("@@USER@@", user)
            .replace("@@CARD@@", card)
            .replace("@@JIT@@", jit)
            .replace("@@TXN@@", "t" + jit)
            .replace("@@AMOUNT@@", args.amount)
        ).encode()
        head = (
            f"POST {split.path} HTTP/1.1\r\nHost: {split.netloc}\r\n"
            f"Content-Type: application/json\r\nAuthorization: {args.auth}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        requests.append(head + body)
    return requests


class Pool:
    """Keep-alive connections; a request takes one, or opens one while under the cap."""

    def __init__(self, host: str, port: int, cap: int) -> None:
        self.host, self.port, self.cap = host, port, cap
        self.idle: asyncio.Queue = asyncio.Queue()
        self.opened = 0

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.cap:
            return await self.open()
        return await self.idle.get()

    def give(self, connection: tuple, *, reusable: bool) -> None:
        if reusable:
            self.idle.put_nowait(connection)
        else:
            connection[1].close()
            self.opened -= 1


async def one(pool: Pool, payload: bytes, scheduled: float, out: dict) -> None:
    started = time.perf_counter()
    out["late"].append(started - scheduled)
    try:
        reader, writer = await pool.take()
    except OSError:
        out["errors"] += 1
        return
    try:
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, reusable = 0, True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                reusable = False
        body = await reader.readexactly(length)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        out["errors"] += 1
        pool.give((reader, writer), reusable=False)
        return
    finished = time.perf_counter()
    pool.give((reader, writer), reusable=reusable)
    out["latency"].append(finished - scheduled)
    out["service"].append(finished - started)
    out["status"][status] = out["status"].get(status, 0) + 1
    if status != 200 and b"fallback=1" in body:
        token = body.split(b'"token": "', 1)[-1].split(b'"', 1)[0].decode(errors="replace")
        out["fallback"].append(f"{token} {status}")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def run(args: argparse.Namespace) -> dict:
    count = int(args.rate * args.duration)
    payloads = build_bodies(args, count)
    split = urlsplit(args.url)
    pool = Pool(split.hostname, split.port or 80, args.connections)
    for _ in range(min(16, args.connections)):  # warm connections, not counted
        pool.give(await pool.open(), reusable=True)
    out: dict = {
        "latency": [],
        "service": [],
        "late": [],
        "status": {},
        "errors": 0,
        "fallback": [],
    }
    tasks = set()
    start = time.perf_counter() + 0.05
    interval = 1.0 / args.rate
    for number, payload in enumerate(payloads):
        scheduled = start + number * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(one(pool, payload, scheduled, out))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_for = time.perf_counter() - start
    if tasks:
        await asyncio.wait(tasks, timeout=args.timeout)
    late = out["late"]
    result = {
        "scenario": args.scenario,
        "mode": "open-loop",
        "target_rps": args.rate,
        "requests": count,
        "completed": len(out["latency"]),
        "rps": len(out["latency"]) / max(sent_for, 1e-9),
        "connections_used": pool.opened,
        "errors": out["errors"],
        "status_200": out["status"].get(200, 0),
        "status_402": out["status"].get(402, 0),
        "status_other": sum(n for s, n in out["status"].items() if s not in (200, 402)),
    }
    for name, values in (("", out["latency"]), ("service_", out["service"])):
        for label, pct in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
            result[f"{name}{label}_us"] = round(percentile(values, pct) * 1e6)
        result[f"{name}max_us"] = round(max(values, default=float("nan")) * 1e6)
    result["fallback_answers"] = len(out["fallback"])
    if out["fallback"]:
        with open(args.results + ".fallback", "a") as file:  # noqa: PTH123
            file.write("".join(line + "\n" for line in out["fallback"]))
    result["client_late_p99_us"] = round(percentile(late, 99) * 1e6)
    result["client_late_max_us"] = round(max(late, default=float("nan")) * 1e6)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("url", "template", "users", "auth", "scenario", "results"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--mode", choices=["hot", "cold"], default="hot")
    parser.add_argument("--prefix", default="ol")
    parser.add_argument("--amount", default="0.01")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=10)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    line = json.dumps(result)
    print(line)
    with open(args.results, "a") as file:  # noqa: PTH123
        file.write(line + "\n")


if __name__ == "__main__":
    main()
