"""The decision script on a real 3-node Redis Cluster: every key of a decision in one slot."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
import redis

from jit import cache
from jit.models import JitDecision
from jit.outbox import drain_outbox
from jit.redis_client import gateway_redis, reset_clients
from tests.cards.factories import CardFactory
from tests.jit.conftest import JSON, jit_body, put_in_cache
from tests.ledger.helpers import assert_ledger_consistent

pytestmark = pytest.mark.django_db


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """Ports whose cluster bus port (+10000) is free too, below the ephemeral range."""
    ports: list[int] = []
    for port in range(21_000 + os.getpid() % 4_000, 30_000, 7):
        if _bindable(port) and _bindable(port + 10_000):
            ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free ports for a Redis Cluster")


@pytest.fixture
def redis_cluster(tmp_path, settings):
    """Three masters on loopback, slots spread by redis-cli, torn down after the test."""
    ports, processes = _free_ports(3), []
    for port in ports:
        directory = tmp_path / str(port)
        directory.mkdir()
        processes.append(
            subprocess.Popen(  # noqa: S603
                [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--dir", str(directory), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
    for port, process in zip(ports, processes, strict=True):
        _wait_ping(port, process)
    subprocess.run(  # noqa: S603
        [shutil.which("redis-cli"), "--cluster", "create",
         *[f"127.0.0.1:{port}" for port in ports], "--cluster-yes"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_cluster_ok(ports[0])
    settings.REDIS_URL, settings.JIT_REDIS_CLUSTER = f"redis://127.0.0.1:{ports[0]}/0", True
    reset_clients()
    cache.reset_scripts()
    yield ports
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
    reset_clients()
    cache.reset_scripts()


def _wait_ping(port: int, process: subprocess.Popen) -> None:
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"redis-server on {port} exited ({process.returncode})")
        try:
            client.ping()
            return
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.01)
    raise RuntimeError(f"redis-server on {port} did not start")


def _wait_cluster_ok(port: int) -> None:
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    for _ in range(300):
        if client.cluster("info").get("cluster_state") == "ok":
            return
        time.sleep(0.02)
    raise RuntimeError("the cluster never became ok")


def test_given_cluster_when_cardholders_on_all_nodes_authorize_then_same_results_as_single(
    client, marqeta_auth, redis_cluster
):
    # given: four cardholders on each of the three nodes
    from cards.services import deposit_funds

    cluster = gateway_redis()
    by_node: dict[str, list[str]] = {}
    for n in range(500):
        token = f"user_c{n}"
        node = cluster.get_node_from_key(cache.keys.account_key(token)).name
        if len(by_node.setdefault(node, [])) < 4:
            by_node[node].append(token)
    cards = [
        CardFactory(cardholder__token=token) for tokens in by_node.values() for token in tokens
    ]
    for card in cards:
        deposit_funds(
            cardholder=card.cardholder, amount_minor=1_000, idempotency_key=card.token, actor="t"
        )
        put_in_cache(card)
    # when: each spends 6.00 twice (the second is declined) and replays the first
    statuses = []
    for card in cards:
        for token, amount in ((f"{card.token}-1", "6.00"), (f"{card.token}-2", "6.00"),
                              (f"{card.token}-1", "6.00")):  # fmt: skip
            body = jit_body(card, token=token, amount=amount)
            statuses.append(
                client.post("/jit/marqeta/", body, content_type=JSON, **marqeta_auth).status_code
            )
    drain_outbox()
    # then
    assert len(by_node) == 3
    assert len(cards) == 12
    assert statuses == [200, 402, 200] * len(cards)
    assert JitDecision.objects.filter(outcome="approved").count() == len(cards)
    for card in cards:
        assert cache.cached_available(user_token=card.cardholder.token) == 400
    assert_ledger_consistent()
