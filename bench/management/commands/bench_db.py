"""The bench databases: a seeded template, cloned for every run.

    bench_db fingerprint        what the seed depends on (migrations, bench/population.py)
    bench_db seed-status        "fresh" if the template exists with today's fingerprint
    bench_db create NAME        drop and create NAME (empty)
    bench_db stamp NAME         record the fingerprint on NAME (after migrate + seed)
    bench_db clone SRC DST      drop DST, create it from the template SRC

Only databases whose name contains "bench" are ever dropped. Runs against the `postgres`
maintenance database with the project's role (it has CREATEDB).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from psycopg import sql

ROOT = Path(settings.BASE_DIR)
SEED_INPUTS = ["ledger", "cards", "jit", "reconciliation", "bench"]
PREFIX = "bench-seed:"


def fingerprint() -> str:
    digest = hashlib.sha256()
    files = [ROOT / "bench" / "population.py"]
    for app in SEED_INPUTS:
        files += sorted((ROOT / app / "migrations").glob("*.py"))
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _connect() -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db["PASSWORD"],
        dbname="postgres",
        autocommit=True,
    )


def _guard(name: str) -> None:
    if "bench" not in name:
        raise CommandError(f"refusing to touch {name!r}: bench databases contain 'bench'")


class Command(BaseCommand):
    help = "Create, stamp and clone the bench databases (never anything without 'bench')."
    requires_system_checks: list = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action", choices=["fingerprint", "seed-status", "create", "stamp", "clone"]
        )
        parser.add_argument("names", nargs="*")

    def handle(self, *args: Any, action: str, names: list[str], **options: Any) -> None:
        if action == "fingerprint":
            self.stdout.write(fingerprint())
            return
        with _connect() as conn:
            if action == "seed-status":
                self.stdout.write(self._status(conn, names[0]))
            elif action == "create":
                self._recreate(conn, names[0])
            elif action == "stamp":
                _guard(names[0])
                conn.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                        sql.Identifier(names[0]), sql.Literal(PREFIX + fingerprint())
                    )
                )
            elif action == "clone":
                self._recreate(conn, names[1], template=names[0])

    def _status(self, conn: psycopg.Connection, name: str) -> str:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
        if row is None:
            return "missing"
        return "fresh" if row[0] == PREFIX + fingerprint() else "stale"

    def _recreate(self, conn: psycopg.Connection, name: str, template: str | None = None) -> None:
        _guard(name)
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            _guard(template)
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(create)
