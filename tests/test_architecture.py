"""Rules of the codebase that a grep can prove."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
APPS = ["cards", "ledger", "jit", "reconciliation", "config"]


def source_files(*apps: str) -> list[Path]:
    return [
        path
        for app in apps
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    ]


def test_only_the_two_ledger_writers_write_ledger_entries():
    """`post_transaction` (one posting) and `LedgerBatch.flush` (COPY, a batch of them)."""
    writers = re.compile(
        r"LedgerEntry\.objects\.(create|bulk_create|update|get_or_create)|(?<!class )LedgerEntry\("
        r"|LedgerEntry\._meta\.db_table|ledger_ledgerentry \("
    )
    offenders = [
        str(path.relative_to(ROOT))
        for path in source_files(*APPS)
        if writers.search(path.read_text())
    ]
    assert sorted(offenders) == ["ledger/batch.py", "ledger/services.py"]


def test_no_float_in_money_code():
    offenders = [
        str(path.relative_to(ROOT))
        for path in source_files(*APPS)
        if re.search(r"\bfloat\(", path.read_text())
    ]
    assert offenders == []


def test_ledger_imports_no_other_app():
    offenders = [
        str(path.relative_to(ROOT))
        for path in source_files("ledger")
        if re.search(r"^\s*(from|import) (cards|jit|reconciliation)\b", path.read_text(), re.M)
    ]
    assert offenders == []


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
