"""Redis stopped mid-traffic: answers keep coming, per policy; nothing approved is lost."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from cards.services import set_fallback_policy
from jit import fallback
from jit.models import JitDecision
from jit.outbox import drain_outbox
from jit.redis_client import gateway_redis, reset_clients
from jit.standin import replay_standin_spool
from jit.sync import rebuild_balance_cache
from ledger.models import Hold, NegativeBalance
from tests.cards.factories import ProgramFactory
from tests.jit.conftest import JSON, jit_body, put_in_cache
from tests.ledger.helpers import assert_ledger_consistent, balances

APPROVE_UP_TO_50 = fallback.StandInPolicy(
    mode="APPROVE_UP_TO",
    max_transaction_minor=5_000,
    max_daily_per_card_minor=7_000,
    allowed_mccs=(),
    deadline_ms=250,
    failure_threshold=2,
    reset_seconds=0.2,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OwnRedis:
    """A redis-server of this test's own, so it can be stopped without harming others."""

    def __init__(self, directory: Path) -> None:
        self.port, self.directory, self.process = _free_port(), directory, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on {self.port} exited")
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path, settings):
    server = OwnRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    reset_clients()
    from jit import cache

    cache.reset_scripts()
    yield server
    if server.process.poll() is None:
        server.stop()
    reset_clients()
    cache.reset_scripts()


def post(client, card, auth, token: str, amount: str = "10.00"):
    body = jit_body(card, token=token, amount=amount)
    return client.post("/jit/marqeta/", body, content_type=JSON, **auth)


@pytest.mark.django_db
def test_given_decline_all_policy_when_redis_down_then_402_in_time_and_spooled(
    client, marqeta_auth, funded_card, own_redis, settings
):
    put_in_cache(funded_card)
    own_redis.stop()
    # when
    started = time.monotonic()
    response = post(client, funded_card, marqeta_auth, "jit-down")
    elapsed = time.monotonic() - started
    # then
    assert response.status_code == 402
    assert json.loads(response.content)["jit_funding"]["decline_reason"] == "INSUFFICIENT_FUNDS"
    spooled = [
        json.loads(line) for line in Path(settings.JIT_STANDIN_SPOOL).read_text().splitlines()
    ]
    assert [(r["fields"]["jit"], r["fields"]["outcome"]) for r in spooled] == [
        ("jit-down", "declined")
    ]
    print(f"fallback answer took {elapsed * 1000:.1f} ms")


@pytest.mark.django_db
def test_given_approve_up_to_policy_when_redis_stopped_mid_traffic_then_nothing_lost(
    client, marqeta_auth, funded_card, funded_wallet, own_redis, settings
):
    fallback.install_policy(APPROVE_UP_TO_50)
    put_in_cache(funded_card)
    before = [
        post(client, funded_card, marqeta_auth, f"jit-before-{n}").status_code for n in range(3)
    ]
    # when: Redis goes away mid-traffic
    own_redis.stop()
    during = [
        post(client, funded_card, marqeta_auth, "jit-d1", "40.00").status_code,  # within limits
        post(client, funded_card, marqeta_auth, "jit-d2", "60.00").status_code,  # over per-txn
        post(client, funded_card, marqeta_auth, "jit-d3", "40.00").status_code,  # over the day
        post(client, funded_card, marqeta_auth, "jit-d1", "40.00").status_code,  # a replay
    ]
    assert fallback.breaker().state == fallback.OPEN
    # and: Redis returns empty (flushed), the spool is replayed, the cache rebuilt
    own_redis.start()
    time.sleep(0.25)  # the breaker's half-open probe is allowed again
    replay_standin_spool()
    rebuild_balance_cache()
    after = post(client, funded_card, marqeta_auth, "jit-after", "10.00").status_code
    drain_outbox()
    # then
    assert before == [200, 200, 200]
    assert during == [200, 402, 402, 200]
    assert after == 200
    standin = Hold.objects.get(authorization_key="jit:jit-d1")
    assert standin.is_standin
    assert JitDecision.objects.get(jit_funding_token="jit-d1").is_fallback
    assert Hold.objects.count() == 5  # 3 before + 1 stand-in + 1 after: nothing lost
    assert balances(funded_wallet) == (10_000 - 3_000 - 4_000 - 1_000, 8_000)
    assert not NegativeBalance.objects.exists()
    assert_ledger_consistent()


def _timed_out_after_deciding(card):
    """The script approved (hold, outbox) but the call timed out and the stand-in declined."""
    from jit import cache
    from jit.marqeta import parse_jit_request
    from jit.services import now_us

    jit_request = parse_jit_request(jit_body(card, token="jit-late", amount="30.00").encode())
    assert cache.run_decision(jit_request, received_at_us=now_us()).outcome == "approved"
    approved, reason = fallback.stand_in_decision(jit_request)  # DECLINE_ALL
    assert approved is False
    fallback.spool_stand_in(
        jit_request, approved=False, reason_code=reason, received_at_us=now_us()
    )


@pytest.mark.parametrize("writer_first", [True, False])
@pytest.mark.django_db
def test_given_script_approved_but_stand_in_declined_when_both_recorded_then_the_answer_wins(
    funded_card, funded_wallet, django_capture_on_commit_callbacks, writer_first
):
    from jit import cache

    put_in_cache(funded_card)
    _timed_out_after_deciding(funded_card)
    # when: the ledger writer and the spool replay run, in either order
    with django_capture_on_commit_callbacks(execute=True):
        if writer_first:
            drain_outbox()
            replay_standin_spool()
        else:
            replay_standin_spool()
            drain_outbox()
    # then: Marqeta was told "declined", so nothing stays held and the cache agrees
    decision = JitDecision.objects.get(jit_funding_token="jit-late")
    assert (decision.outcome, decision.is_fallback) == ("declined", True)
    assert balances(funded_wallet) == (10_000, 0)
    assert cache.cached_available(user_token=funded_card.cardholder.token) == 10_000
    assert_ledger_consistent()


@pytest.mark.django_db
def test_given_redis_times_out_after_deciding_when_answering_then_the_stored_answer_is_given(
    client, marqeta_auth, funded_card, monkeypatch
):
    from jit import cache

    put_in_cache(funded_card)
    decide = cache.run_decision

    def decides_then_times_out(*args, **kwargs):
        decide(*args, **kwargs)
        raise redis.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(cache, "run_decision", decides_then_times_out)
    # when
    response = post(client, funded_card, marqeta_auth, "jit-slow", "30.00")
    # then: the approval the script made, not a stand-in decline
    assert response.status_code == 200
    assert "fallback" not in json.loads(response.content)["jit_funding"]["tags"]
    assert cache.cached_available(user_token=funded_card.cardholder.token) == 7_000


def test_given_policy_redis_timeout_when_installed_then_the_gateway_waits_that_long(db, settings):
    # given: ops set the program's fallback policy in the admin
    program = ProgramFactory()
    set_fallback_policy(program=program, actor=None, reason="tune", redis_timeout_ms=80)
    # when: the web process's refresher installs it
    fallback.install_policy(fallback.load_policy())
    # then: the hot path's Redis client times out after 80 ms, and after the setting without one
    timeout = gateway_redis().connection_pool.connection_kwargs["socket_timeout"]
    fallback.install_policy(fallback.StandInPolicy())
    default = gateway_redis().connection_pool.connection_kwargs["socket_timeout"]
    assert (timeout, default) == (0.08, settings.JIT_REDIS_TIMEOUT_MS / 1000)
