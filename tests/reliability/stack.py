"""A complete private platform for the reliability suite, on free ports under a temporary dir.

PostgreSQL (its own cluster: initdb and pg_ctl as the unprivileged `cardpg`, exactly as
scripts/services.sh runs the development one, since PostgreSQL refuses root), Redis (AOF,
`appendfsync always`), gunicorn serving config.wsgi, the two sharded ledger writers and a
Celery worker, as `make run` starts them. Each process runs in a process group of its own, so
a scenario can SIGKILL exactly one piece and `Stack.close()` can end them all.

The shared development servers (PostgreSQL 55432, Redis 56379) are never used: every URL the
stack's processes get is checked against their ports before anything starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import redis

from bench.run import _children as child_pids

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
SHARED_PORTS = frozenset({55432, 56379})  # the development servers others' tests run on
MARKER = "RELIABILITY_STACK"  # in every stack process's environment: its directory
JIT_CREDENTIALS = ("reliability_jit", "Jit-Reliability-Password-2026!")
WEBHOOK_CREDENTIALS = ("reliability_webhook", "Webhook-Reliability-Password-2026!")
CLEARING_BATCH_LINES = 2  # a commit every 2 lines, so a file stays "mid-file" for a while


class StackError(RuntimeError):
    """A piece of the private stack did not start or answer in time."""


NOT_YET = (OSError, redis.RedisError, psycopg.Error, httpx.HTTPError)  # a server still starting


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; StackError naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*NOT_YET):
            if result := check():
                return result
        if time.monotonic() > deadline:
            raise StackError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def free_port() -> int:
    """A free loopback port, never one of the shared servers'."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in SHARED_PORTS:
            return port


def ensure_private(env: dict[str, str]) -> None:
    """Refuse to start anything that would talk to the shared development servers."""
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        port = urlsplit(env[name]).port
        if port in SHARED_PORTS or port is None:
            raise StackError(f"{name} {env[name]} is not a private server of this stack")


# --- processes ------------------------------------------------------------------------------


@dataclass
class Process:
    """One child process in a process group of its own, logging to a file of the stack."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own commands
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen else 0

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group (a Celery worker's pool, a gunicorn's workers die with it)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
        if sig == signal.SIGKILL and self.popen is not None:
            self.popen.wait(timeout=30)

    def stop(self, timeout: float = 20) -> int | None:
        """TERM, then KILL if it is still there after `timeout`; the exit code."""
        if self.popen is None:
            return None
        if self.alive:
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):  # any straggler of its group
            os.killpg(self.pid, signal.SIGKILL)
        return self.popen.returncode

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def marked_pids(root: Path) -> list[int]:
    """Processes whose environment names this stack (what the reaper ends if we die)."""
    marker, found = f"{MARKER}={root}".encode(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def rss_kib(pid: int) -> int:
    """Resident memory of one process, from /proc (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


# --- Redis ------------------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    """redis-server as `make run` configures it (AOF, fsync on every write, no RDB)."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: Process | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), socket_timeout=10, decode_responses=True)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            shutil.which("redis-server") or "redis-server", "--port", str(self.port),
            "--bind", "127.0.0.1", "--dir", str(self.directory), "--appendonly", "yes",
            "--appendfsync", "always", "--save", "", "--daemonize", "no",
        ]  # fmt: skip
        env = {**os.environ, MARKER: str(self.directory.parent)}
        self.process = Process("redis", argv, env, self.directory.parent / "log" / "redis.log")
        self.process.start()
        wait_until(self.client().ping, timeout=30, what=f"redis on {self.port}")

    def crash(self) -> None:
        """SIGKILL: nothing is flushed on the way out; the AOF must already hold every write."""
        self.process.kill(signal.SIGKILL)

    def flush(self) -> None:
        """Lose every key, as a Redis replaced by an empty one would."""
        self.client().flushall()


# --- PostgreSQL -------------------------------------------------------------------------------


def pg_bin() -> Path:
    """The newest installed server binaries (PG_BIN wins), as scripts/lib.sh finds them."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parent)
    if not found:
        raise StackError("PostgreSQL server binaries not found (run scripts/bootstrap.sh)")
    return max(found, key=lambda p: int(p.parent.parent.name)).parent


@dataclass
class PrivatePostgres:
    """A cluster of our own, run by `cardpg` when we are root (PostgreSQL refuses root)."""

    directory: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    os_user: str = field(default_factory=lambda: os.environ.get("PG_OS_USER", "cardpg"))

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgres://reliability:{self.password}@127.0.0.1:{self.port}/reliability"

    def _as_owner(self, *argv: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.os_user, "--"] if os.geteuid() == 0 else []
        command = [*prefix, *map(str, argv)]
        return subprocess.run(  # noqa: S603 - our own commands
            command, cwd=self.directory, check=check, capture_output=True, text=True
        )

    def _prepare(self) -> None:
        self.directory.mkdir(mode=0o700)
        (self.directory / "run").mkdir(mode=0o700)
        (self.directory / "pw").write_text(self.password + "\n")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(self.os_user)
            except KeyError:
                raise StackError(
                    f"no OS user {self.os_user}: run scripts/services.sh start"
                ) from None
            for path in (self.directory, self.directory / "run", self.directory / "pw"):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def _os_account(self) -> pwd.struct_passwd:
        """The unprivileged account (created as scripts/services.sh creates it, if missing)."""
        try:
            return pwd.getpwnam(self.os_user)
        except KeyError:
            subprocess.run(  # noqa: S603 - Debian's useradd, as services.sh runs it
                [shutil.which("useradd") or "/usr/sbin/useradd", "--system", "--user-group",
                 "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                 self.os_user],
                check=True,
            )  # fmt: skip
            return pwd.getpwnam(self.os_user)

    def init(self) -> None:
        self._prepare()
        self._as_owner(
            pg_bin() / "initdb", f"--pgdata={self.data}", "--username=postgres",
            f"--pwfile={self.directory / 'pw'}", "--auth-local=trust",
            "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale",
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": self.port,
            "unix_socket_directories": f"'{self.directory / 'run'}'", "max_connections": 100,
            "shared_buffers": "'128MB'", "fsync": "on", "synchronous_commit": "on",
            "timezone": "'UTC'", "log_timezone": "'UTC'",
        }  # fmt: skip
        lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
        with (self.data / "postgresql.conf").open("a") as conf:  # as the owner's file allows
            conf.write("\n# reliability stack\n" + lines)

    def start(self) -> None:
        self._as_owner(
            pg_bin() / "pg_ctl", f"--pgdata={self.data}", f"--log={self.directory / 'pg.log'}",
            "--wait", "--timeout=120", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions; `immediate` is a crash (recovery on start)."""
        self._as_owner(
            pg_bin() / "pg_ctl", f"--pgdata={self.data}", f"--mode={mode}", "--wait", "stop",
            check=False,
        )  # fmt: skip

    @property
    def running(self) -> bool:
        status = self._as_owner(pg_bin() / "pg_ctl", f"--pgdata={self.data}", "status", check=False)
        return status.returncode == 0

    def create_app_database(self) -> None:
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", password=self.password,
            dbname="postgres", autocommit=True,
        ) as admin:  # fmt: skip
            admin.execute(f"CREATE ROLE reliability LOGIN PASSWORD '{self.password}'")
            admin.execute("CREATE DATABASE reliability OWNER reliability")

    def connect(self) -> psycopg.Connection:
        """The app's role, for the harness's own read-only polling."""
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)


# --- the stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    """Every process of the platform, privately. `start()`, scenarios, then `close()`."""

    root: Path
    pg: PrivatePostgres
    redis: PrivateRedis
    web_port: int = field(default_factory=free_port)
    web_workers: int = 2
    web_threads: int = 4
    cold_accounts: int = 200
    web: Process | None = None
    writers: list[Process] = field(default_factory=list)
    worker: Process | None = None
    extra: list[Process] = field(default_factory=list)  # web tiers a scenario adds
    reaper: Process | None = None

    @classmethod
    def create(cls, *, cold_accounts: int) -> Stack:
        root = Path(tempfile.mkdtemp(prefix="cardrel-"))
        root.chmod(0o711)  # cardpg must reach pg/ below it
        return cls(
            root=root,
            pg=PrivatePostgres(root / "pg"),
            redis=PrivateRedis(root / "redis"),
            cold_accounts=cold_accounts,
        )

    # environment -------------------------------------------------------------------------

    @property
    def spool(self) -> Path:
        return self.root / "spool" / "standin.jsonl"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self, **overrides: str) -> dict[str, str]:
        """What every process of the stack gets: private URLs, own credentials, own files."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.local",
            DEBUG="false",
            SECRET_KEY="reliability-" + "x" * 40,
            DATABASE_URL=self.pg.url,
            REDIS_URL=self.redis.url(0),
            CELERY_BROKER_URL=self.redis.url(1),
            MARQETA_JIT_USERNAME=JIT_CREDENTIALS[0],
            MARQETA_JIT_PASSWORD=JIT_CREDENTIALS[1],
            MARQETA_WEBHOOK_USERNAME=WEBHOOK_CREDENTIALS[0],
            MARQETA_WEBHOOK_PASSWORD=WEBHOOK_CREDENTIALS[1],
            MARQETA_WEBHOOK_SECRET="",
            CLEARING_INBOX_URL=self.inbox.as_uri(),
            CLEARING_BATCH_LINES=str(CLEARING_BATCH_LINES),
            CLEARING_STALL_MINUTES="0",  # a pull re-queues a file a killed worker left
            JIT_STANDIN_SPOOL=str(self.spool),
            JIT_POLICY_REFRESH_SECONDS="1",
            PROMETHEUS_MULTIPROC_DIR=str(self.root / "prometheus"),
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            **{MARKER: str(self.root)},
        )
        env.update(overrides)
        ensure_private(env)
        return env

    def manage(self, *args: str, timeout: float = 600) -> str:
        """`manage.py <args>` against the stack; its output (StackError when it fails)."""
        return self._python([str(ROOT / "manage.py"), *args], timeout=timeout)

    def stackside(self, *args: str, timeout: float = 600) -> dict:
        """`python -m tests.reliability.stackside <args>` inside the stack: its JSON answer."""
        out = self._python(["-m", "tests.reliability.stackside", *args], timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def _python(self, argv: list[str], *, timeout: float) -> str:
        done = subprocess.run(  # noqa: S603 - our own commands
            [PY, *argv], cwd=ROOT, env=self.env(), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise StackError(
                f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
        return done.stdout

    # processes ---------------------------------------------------------------------------

    def gunicorn(self, *, port: int, workers: int, name: str, **env: str) -> Process:
        argv = [
            str(Path(PY).parent / "gunicorn"), "config.wsgi:application", "--chdir", str(ROOT),
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", "gthread", "--threads", str(self.web_threads), "--reuse-port",
            "--graceful-timeout", "5", "--log-level", "warning",
        ]  # fmt: skip
        process = Process(name, argv, self.env(**env), self.root / "log" / f"{name}.log")
        process.start()
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: httpx.get(url, timeout=2).status_code == 200, timeout=60, what=name)
        wait_until(lambda: len(child_pids(process.pid)) >= workers, timeout=30, what=name)
        return process

    def writer(self, shard: int, *, batch: int = 500) -> Process:
        return Process(
            f"writer-{shard}", self._writer_argv(shard, batch), self.env(),
            self.root / "log" / f"writer-{shard}.log",
        )  # fmt: skip

    @staticmethod
    def _writer_argv(shard: int, batch: int) -> list[str]:
        return [
            PY, str(ROOT / "manage.py"), "run_ledger_writer", "--consumer", f"writer-{shard}",
            "--shard", f"{shard}/2", "--block-ms", "500", "--batch", str(batch),
        ]  # fmt: skip

    def celery_worker(self) -> Process:
        argv = [
            str(Path(PY).parent / "celery"), "-A", "config.celery_app", "worker",
            "-Q", "celery,ledger,webhooks,clearing", "--concurrency", "2",
            "--loglevel", "INFO", "-n", f"reliability-{os.getpid()}@%h",
        ]  # fmt: skip
        return Process("celery", argv, self.env(), self.root / "log" / "celery.log")

    def start_worker(self) -> None:
        self.worker = self.celery_worker()
        mark = self.worker.log.stat().st_size if self.worker.log.exists() else 0
        self.worker.start()
        wait_until(
            lambda: " ready." in self.worker.log.read_text(errors="replace")[mark:],
            timeout=90, what="celery worker",
        )  # fmt: skip

    def start_writer(self, shard: int, *, batch: int = 500) -> None:
        """(Re)start writer `shard`, `batch` events a transaction (the command's default)."""
        process = self.writers[shard] if shard < len(self.writers) else self.writer(shard)
        process.argv = self._writer_argv(shard, batch)
        mark = process.log.stat().st_size if process.log.exists() else 0
        process.start()
        if shard >= len(self.writers):
            self.writers.append(process)
        wait_until(
            lambda: "started" in process.log.read_text(errors="replace")[mark:],
            timeout=60, what=process.name,
        )  # fmt: skip

    def web_worker_pids(self, web: Process | None = None) -> list[int]:
        return child_pids((web or self.web).pid)

    # life cycle --------------------------------------------------------------------------

    def start(self, *, keep: bool = False) -> Stack:
        reaper = [PY, "-m", "tests.reliability.reaper", str(os.getpid()), str(self.root), str(keep)]
        self.reaper = Process("reaper", reaper, dict(os.environ), self.root / "reaper.log").start()
        (self.root / "prometheus").mkdir()
        self.inbox.mkdir()
        self.pg.init()
        self.pg.start()
        self.pg.create_app_database()
        self.redis.start()
        self.manage("migrate", "--noinput", "-v0")
        self.stackside("seed", "--cold", str(self.cold_accounts))
        for shard in (0, 1):
            self.start_writer(shard)
        self.web = self.gunicorn(port=self.web_port, workers=self.web_workers, name="web")
        self.start_worker()
        return self

    def ensure_running(self) -> list[str]:
        """Start again whatever a previous scenario left dead; what had to be restarted."""
        restarted = []
        if not self.pg.running:
            self.pg.start()
            restarted.append("postgres")
        if not self.redis.process.alive:
            self.redis.start()
            restarted.append("redis")
        for shard, process in enumerate(self.writers):
            if not process.alive:
                self.start_writer(shard)
                restarted.append(process.name)
        if not self.worker.alive:
            self.start_worker()
            restarted.append("celery")
        if not self.web.alive:
            self.web = self.gunicorn(port=self.web_port, workers=self.web_workers, name="web")
            restarted.append("web")
        return restarted

    def close(self, *, keep: bool = False) -> None:
        """End every process the stack started; remove its directory unless `keep`."""
        for process in [self.reaper, *self.extra, self.web, self.worker, *self.writers]:
            if process is not None:
                process.stop(timeout=10)
        if self.redis.process is not None:
            self.redis.process.stop(timeout=10)
        if self.pg.data.exists():
            self.pg.stop(mode="immediate")
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_stack(*, cold_accounts: int, keep: bool = False) -> Iterator[Stack]:
    """A started stack, closed (every process ended) however the block exits."""
    stack = Stack.create(cold_accounts=cold_accounts)
    try:
        yield stack.start(keep=keep)
    finally:
        stack.close(keep=keep)
