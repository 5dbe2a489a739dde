"""Faults under real traffic: a piece of the platform is killed, stopped or slowed, and nothing
Marqeta was told may be lost. Each scenario ends with `settle` (stand-ins replayed, outbox
drained, Marqeta's timeout webhooks applied), every invariant, and a report line.

Wall-clock figures (answers within Marqeta's 3 s, latency) are printed, never asserted.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from jit.outbox import GROUP, shard_streams
from reconciliation.models import ClearingFile
from tests.reliability.checks import (
    assert_clean,
    lag,
    report,
    restart_dead_writers,
    settle,
    wait_for_drain,
)
from tests.reliability.proxy import LatencyProxy
from tests.reliability.stack import free_port, wait_until
from tests.reliability.traffic import (
    Shopper,
    Traffic,
    ask,
    clearing_file,
    summary,
    transport,
)

pytestmark = pytest.mark.reliability


def traffic_for(stack, run_id, profile, **kwargs) -> Traffic:
    shopper = Shopper(run_id, cold=stack.cold_accounts, hot_share=kwargs.pop("hot_share", 0.2))
    return Traffic(stack.base_url, shopper, rate=profile.traffic_rate, **kwargs)


# (a) ------------------------------------------------------------------------------------------


def test_web_worker_killed_mid_request(stack, profile, run_id, tmp_path):
    traffic = traffic_for(stack, run_id, profile).start()
    time.sleep(profile.traffic_seconds / 2)
    victim = stack.web_worker_pids()[0]
    fired = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:  # a burst in flight when the kill lands
        burst = pool.submit(traffic.burst, 24, fired=fired)
        fired.wait(timeout=30)
        time.sleep(0.004)
        os.kill(victim, signal.SIGKILL)
        in_burst = burst.result()
    time.sleep(profile.traffic_seconds / 2)
    answers = traffic.stop()
    workers = wait_until(
        lambda: (pids := stack.web_worker_pids()) and len(pids) == stack.web_workers and pids,
        timeout=30, what="gunicorn replaced the killed worker",
    )  # fmt: skip
    found = settle(stack, traffic, tmp_path)
    report(
        f"web worker SIGKILL ({profile.name})", answers, found,
        burst_without_answer=sum(a.status is None for a in in_burst),
    )  # fmt: skip
    assert victim not in workers
    assert_clean(found)


# (b) ------------------------------------------------------------------------------------------


def pending_of(stack, consumer: str, streams: list[str]) -> int:
    client, total = stack.redis.client(), 0
    for stream in streams:
        for row in client.xpending(stream, GROUP).get("consumers", []):
            total += int(row["pending"]) if row["name"] == consumer else 0
    return total


def test_ledger_writer_killed_mid_batch_then_restarted(stack, profile, run_id, tmp_path):
    writer, streams = stack.writers[0], shard_streams(0, 2)
    writer.stop()  # a backlog for writer-0 to be in the middle of
    traffic = traffic_for(stack, run_id, profile, hot_share=0.0, threads=8)
    traffic.rate = max(profile.traffic_rate, 200)
    answers = traffic.send(profile.writer_burst)
    # small batches: the set-based writer takes about a millisecond an event, so one default
    # batch would hold the whole backlog and be written before the harness could see it pending
    stack.start_writer(0, batch=10)
    wait_until(
        lambda: pending_of(stack, writer.name, streams), timeout=60, what="writer-0 batch",
        every=0.002,
    )  # fmt: skip
    writer.kill()  # inside a batch's transaction: its events are read and not acknowledged
    pending_at_kill = pending_of(stack, writer.name, streams)
    stack.start_writer(0)  # the same consumer name: it reads its pending events first
    drained_in = wait_for_drain(stack)
    found = settle(stack, traffic, tmp_path)
    report(
        f"ledger writer SIGKILL mid-batch ({profile.name})", answers, found,
        pending_at_kill=pending_at_kill, drained_after_restart_s=drained_in,
    )  # fmt: skip
    assert pending_at_kill > 0
    assert_clean(found)


# (c) ------------------------------------------------------------------------------------------


FILE_COLUMNS = ("status", "lines_total", "applied_through_line", "lines_applied", "lines_replayed")


def file_state(connection, name: str) -> dict | None:
    row = connection.execute(
        f"SELECT {', '.join(FILE_COLUMNS)} FROM {ClearingFile._meta.db_table} WHERE name = %s",  # noqa: S608
        [name],
    ).fetchone()
    return dict(zip(FILE_COLUMNS, row, strict=True)) if row else None


def test_celery_worker_killed_mid_clearing_file_then_restarted(stack, profile, run_id, tmp_path):
    traffic = traffic_for(stack, run_id, profile)
    traffic.rate = max(profile.traffic_rate, 100)
    answers = traffic.send(profile.clearing_lines)
    approved = [traffic.shopper.sent[a.token] for a in answers if a.approved]
    wait_for_drain(stack)  # the holds the file clears are in the ledger
    written = clearing_file(traffic.shopper, approved, inbox=stack.inbox)
    stack.stackside("pull")  # what beat does every 5 minutes
    name = written.path.name
    with stack.pg.connect() as db:
        mid = wait_until(
            lambda: (s := file_state(db, name)) and 0 < s["applied_through_line"] < written.lines
            and s,
            timeout=120, what="ingestion under way", every=0.005,
        )  # fmt: skip
        stack.worker.kill()  # the whole worker: its pool children too
        at_kill = file_state(db, name)
        stack.start_worker()
        stack.stackside("pull")  # re-queues the file the dead worker left (stall minutes: 0)
        final = wait_until(
            lambda: (s := file_state(db, name)) and s["status"] == "ingested" and s,
            timeout=300, what="file ingested after the restart",
        )  # fmt: skip
    found = settle(stack, traffic, tmp_path)
    report(
        f"celery SIGKILL mid clearing file ({profile.name})", answers, found,
        file_lines=written.lines, killed_at_line=at_kill["applied_through_line"],
        seen_mid_file_at=mid["applied_through_line"], applied=final["lines_applied"],
        replayed=final["lines_replayed"],
    )  # fmt: skip
    assert final["lines_total"] == written.lines
    assert final["lines_applied"] + final["lines_replayed"] == written.lines
    assert_clean(found)


# (d) ------------------------------------------------------------------------------------------


def test_redis_crashed_and_restarted_under_traffic(stack, profile, run_id, tmp_path):
    traffic = traffic_for(stack, run_id, profile).start()
    time.sleep(profile.traffic_seconds / 3)
    stack.redis.crash()  # SIGKILL: only what the AOF already holds survives
    down_from = time.monotonic() - traffic.started
    time.sleep(profile.redis_outage_seconds)
    stack.redis.start()
    up_at = time.monotonic() - traffic.started
    time.sleep(profile.traffic_seconds / 3)
    answers = traffic.stop()
    died = restart_dead_writers(stack)
    found = settle(stack, traffic, tmp_path)
    during = summary(traffic.between(down_from, up_at))
    report(
        f"redis SIGKILL + restart ({profile.name})", answers, found,
        outage_answered=f"{during['answered']}/{during['sent']}",
        outage_stand_in=during["stand_in"], writers_exited=",".join(died) or "none",
    )  # fmt: skip
    assert summary(answers)["no_answer"] == 0
    assert died == []  # the writers wait for Redis and carry on
    assert_clean(found)


def flush_and_rebuild(stack, traffic: Traffic, count: int) -> list[str]:
    """`count` requests, all in PostgreSQL, then Redis emptied and rebuilt from the ledger;
    which ledger writers exited (their blocked reads fail when the streams vanish)."""
    traffic.send(count)
    wait_for_drain(stack)  # every decision is in PostgreSQL: the flush loses only the cache
    stack.redis.flush()
    stack.manage("rebuild_balance_cache")
    return restart_dead_writers(stack)


def test_redis_flushed_then_rebuilt_from_the_ledger(stack, profile, run_id, tmp_path):
    half = int(profile.traffic_rate * profile.traffic_seconds / 2)
    traffic = traffic_for(stack, run_id, profile)
    died = flush_and_rebuild(stack, traffic, half)
    after = Traffic(stack.base_url, traffic.shopper, profile.traffic_rate, answers=traffic.answers)
    after.send(2 * half)
    found = settle(stack, after, tmp_path)
    report(
        f"redis FLUSHALL + rebuild_balance_cache ({profile.name})", after.answers, found,
        writers_exited=",".join(died) or "none",
    )  # fmt: skip
    assert summary(after.answers)["approved"] > summary(traffic.answers[:half])["approved"]
    assert died == []  # the writers recreate their consumer groups and carry on
    assert_clean(found)


@pytest.mark.slow
def test_jit_retry_after_rebuild_moves_the_cache_once(stack, run_id, tmp_path):
    traffic = Traffic(stack.base_url, Shopper(run_id, cold=stack.cold_accounts), rate=40)
    flush_and_rebuild(stack, traffic, 20)
    sender = transport(stack.base_url)  # Marqeta sends some of them again: same answers
    retried = [traffic.shopper.sent[a.token] for a in traffic.answers if a.approved][:5]
    traffic.answers += [ask(sender, purchase, traffic.started) for purchase in retried]
    try:
        found = settle(stack, traffic, tmp_path)
    finally:  # the drift this leaves must not fail the next scenario's checks
        wait_for_drain(stack)
        stack.manage("rebuild_balance_cache")
    assert [a.status for a in traffic.answers[-len(retried) :]] == [200] * len(retried)
    assert_clean(found)


# (e) ------------------------------------------------------------------------------------------


def test_postgres_stopped_while_authorizations_continue(stack, profile, run_id, tmp_path):
    traffic = traffic_for(stack, run_id, profile).start()
    time.sleep(1)
    stack.pg.stop(mode="fast")
    down_from = time.monotonic() - traffic.started
    time.sleep(profile.pg_outage_seconds)
    lag_at_restart = lag(stack)
    stack.pg.start()
    up_at = time.monotonic() - traffic.started
    time.sleep(1)
    answers = traffic.stop()
    died = restart_dead_writers(stack)
    found = settle(stack, traffic, tmp_path)
    during = summary(traffic.between(down_from, up_at))
    report(
        f"postgres stopped {profile.pg_outage_seconds:.0f} s ({profile.name})", answers, found,
        outage_answered=f"{during['answered']}/{during['sent']}",
        outage_in_deadline=during["in_deadline"], outage_stand_in=during["stand_in"],
        outbox_at_restart=lag_at_restart, writers_exited=",".join(died) or "none",
    )  # fmt: skip
    assert during["sent"] > 0
    assert during["answered"] == during["sent"]  # the JIT path needs no PostgreSQL
    assert died == []  # the writers wait for PostgreSQL and carry on
    assert_clean(found)


# (f) ------------------------------------------------------------------------------------------


def test_slow_network_to_redis_opens_the_breaker_then_it_closes(stack, profile, run_id, tmp_path):
    proxy = LatencyProxy(stack.redis.port).start()
    port = free_port()
    web = stack.gunicorn(
        port=port, workers=1, name="web-slow-redis", REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0"
    )
    stack.extra.append(web)
    traffic = traffic_for(stack, run_id, profile, threads=4)
    traffic.base_url = f"http://127.0.0.1:{port}"
    try:
        traffic.start()
        time.sleep(1.5)  # the policy refresher (every 1 s) has loaded the stand-in policy
        slowed_from, proxy.latency = time.monotonic() - traffic.started, 0.4
        time.sleep(profile.latency_seconds)
        healed_at, proxy.latency = time.monotonic() - traffic.started, 0.0
        time.sleep(3.5)  # the breaker's reset (1 s), then a probe that succeeds
        answers = traffic.stop()
    finally:
        traffic.stop()
        web.stop()
        proxy.close()
    found = settle(stack, traffic, tmp_path)
    slowed = summary(traffic.between(slowed_from, healed_at))
    healed = summary(traffic.between(healed_at + 2, healed_at + 60))
    report(
        f"redis latency 400 ms via proxy ({profile.name})", answers, found,
        slow_stand_in=f"{slowed['stand_in']}/{slowed['sent']}",
        slow_in_deadline=slowed["in_deadline"], healed_stand_in=healed["stand_in"],
    )  # fmt: skip
    assert slowed["stand_in"] > 0  # the breaker opened and the policy answered
    assert healed["sent"] > 0
    assert healed["stand_in"] == 0  # and closed again
    assert_clean(found)
