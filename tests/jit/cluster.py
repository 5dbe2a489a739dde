"""A local 3-node Redis Cluster, and gunicorn web processes pointed at it: the pieces of the
cluster tests (tests/jit/test_cluster.py), each torn down by its context manager."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import redis
from django.test import override_settings

from jit import cache
from jit.redis_client import reset_clients

ROOT = Path(__file__).resolve().parents[2]


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, start: int = 21_000) -> list[int]:
    """Ports whose cluster bus port (+10000) is free too, below the ephemeral range."""
    ports: list[int] = []
    for port in range(start + os.getpid() % 4_000, 30_000, 7):
        if _bindable(port) and _bindable(port + 10_000):
            ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free ports for a Redis Cluster")


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


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _redis_node(port: int, directory: Path) -> subprocess.Popen:
    directory.mkdir(parents=True)
    return subprocess.Popen(  # noqa: S603
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
         "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
         "--dir", str(directory), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


@contextmanager
def running_cluster(directory: Path) -> Iterator[list[int]]:
    """Three masters on loopback, slots spread by redis-cli; their ports."""
    ports = free_ports(3)
    with ExitStack() as stack:
        for port in ports:
            node = _redis_node(port, directory / str(port))
            stack.callback(_stop, node)
            _wait_ping(port, node)
        subprocess.run(  # noqa: S603
            [shutil.which("redis-cli"), "--cluster", "create",
             *[f"127.0.0.1:{port}" for port in ports], "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_cluster_ok(ports[0])
        yield ports


@contextmanager
def gateway_on_cluster(ports: list[int]) -> Iterator[str]:
    """This process's gateway and maintenance clients on the cluster, and back after; the URL."""
    url = f"redis://127.0.0.1:{ports[0]}/0"
    with override_settings(REDIS_URL=url, JIT_REDIS_CLUSTER=True):
        reset_clients()
        cache.reset_scripts()
        try:
            yield url
        finally:  # still overridden: no client is made between here and the restore
            reset_clients()
            cache.reset_scripts()


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn at {url} did not answer /healthz in 60 s")


def _gunicorn(port: int, environment: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own server
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi:application",
             "--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "60",
             "--graceful-timeout", "5"],
            cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@contextmanager
def web_processes(count: int, environment: dict[str, str], directory: Path) -> Iterator[list[str]]:
    """`count` gunicorn processes (one worker each) serving config.wsgi; their base URLs."""
    ports = free_ports(count, start=26_000)
    with ExitStack() as stack:
        urls = []
        for port in ports:
            log = directory / f"gunicorn-{port}.log"
            process = _gunicorn(port, environment, log)
            stack.callback(_stop, process)
            urls.append(f"http://127.0.0.1:{port}")
            _wait_healthy(urls[-1], process, log)
        yield urls
