"""Pulling clearing files: a local directory and a remote-style file system (fsspec memory://),
the same file twice, the beat task's queueing and the command end to end."""

from __future__ import annotations

import io
from pathlib import Path

import fsspec
import pytest
from django.core.management import call_command

from reconciliation import clearing, tasks
from reconciliation.inbox import open_inbox
from reconciliation.models import ClearingFile, ClearingLine
from tests.ledger.helpers import balances
from tests.reconciliation.clearing_helpers import clearing_csv, row

pytestmark = pytest.mark.django_db
NAME = "clearing_demo_20260509_1.csv"


def force(token: str, amount: str = "10.00") -> list[str]:
    return row(token, amount, jit="", final="", mcc="7523", merchant="CITY PARKING")


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """File ids the on-commit hook queued for ingestion (no broker: the test runs them)."""
    ids: list[int] = []
    monkeypatch.setattr(tasks.ingest_clearing_file_task, "delay", ids.append)
    return ids


@pytest.fixture
def memory_inbox():
    fs = fsspec.filesystem("memory")
    fs.mkdir("/clearing/inbox")
    yield fs
    fs.rm("/clearing", recursive=True)


def test_given_a_local_inbox_when_pulled_then_recorded_moved_and_queued_on_commit(
    tmp_path, week_wallet, queued, django_capture_on_commit_callbacks
):
    # given
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / NAME).write_bytes(clearing_csv([force("txn-1")]))
    (inbox / "notes.txt").write_text("not a clearing file")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        (registration,) = clearing.pull_clearing_files(inbox_url=str(inbox))
    # then
    clearing_file = registration.clearing_file
    assert registration.created
    assert queued == [clearing_file.pk]
    assert clearing_file.status == "received"
    assert clearing_file.settlement_date.isoformat() == "2026-05-09"
    assert not (inbox / NAME).exists()
    assert (inbox / "processed" / NAME).exists()
    assert clearing_file.stored_url == f"file://{inbox / 'processed' / NAME}"
    assert (inbox / "notes.txt").exists()
    # and the task ingests it
    assert tasks.ingest_clearing_file_task(clearing_file.pk) == "ingested"
    assert balances(week_wallet) == (24_000, 0)


def test_given_the_same_file_twice_when_pulled_then_the_second_is_skipped(
    tmp_path, week_wallet, queued, django_capture_on_commit_callbacks, caplog
):
    # given: the file is pulled and ingested, then re-sent under another name
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    content = clearing_csv([force("txn-1")])
    (inbox / NAME).write_bytes(content)
    with django_capture_on_commit_callbacks(execute=True):
        (first,) = clearing.pull_clearing_files(inbox_url=str(inbox))
    clearing.ingest_clearing_file(clearing_file=first.clearing_file)
    (inbox / "clearing_demo_20260509_9.csv").write_bytes(content)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        (second,) = clearing.pull_clearing_files(inbox_url=str(inbox))
    # then: skipped (logged), not queued, nothing moved twice
    assert not second.created
    assert second.clearing_file.pk == first.clearing_file.pk
    assert queued == [first.clearing_file.pk]
    assert ClearingFile.objects.count() == 1
    assert "skipped: the same bytes" in caplog.text
    assert balances(week_wallet) == (24_000, 0)
    assert (inbox / "processed" / "clearing_demo_20260509_9.csv").exists()


def test_given_a_name_already_processed_when_a_new_file_has_it_then_both_are_kept(
    tmp_path, week_wallet
):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for token in ("txn-1", "txn-2"):
        (inbox / NAME).write_bytes(clearing_csv([force(token)]))
        clearing.pull_clearing_files(inbox_url=str(inbox), enqueue=False)
    assert ClearingFile.objects.count() == 2
    assert len(list((inbox / "processed").iterdir())) == 2


def test_given_a_memory_inbox_when_pulled_and_ingested_then_applied(week_wallet, memory_inbox):
    # given: fsspec's in-memory file system stands in for SFTP or S3
    memory_inbox.pipe(f"/clearing/inbox/{NAME}", clearing_csv([force("txn-1"), force("txn-2")]))
    # when
    (registration,) = clearing.pull_clearing_files(
        inbox_url="memory://clearing/inbox", enqueue=False
    )
    clearing_file = clearing.ingest_clearing_file(clearing_file=registration.clearing_file)
    # then
    assert clearing_file.status == "ingested"
    assert clearing_file.stored_url == f"memory:///clearing/inbox/processed/{NAME}"
    assert memory_inbox.exists(f"/clearing/inbox/processed/{NAME}")
    assert not memory_inbox.exists(f"/clearing/inbox/{NAME}")
    assert balances(week_wallet) == (23_000, 0)


def test_given_a_relative_inbox_path_then_it_is_under_the_project(settings):
    assert open_inbox("var/clearing/inbox").root == f"{settings.BASE_DIR}/var/clearing/inbox"


def test_given_no_inbox_directory_when_pulled_then_created_and_nothing_found(tmp_path, db):
    inbox = tmp_path / "var" / "clearing" / "inbox"
    assert clearing.pull_clearing_files(inbox_url=f"file://{inbox}") == []
    assert inbox.is_dir()
    assert open_inbox(f"file://{inbox}").url == f"file://{inbox}"


def test_given_files_in_a_local_inbox_when_the_command_runs_then_pulled_and_ingested(
    tmp_path, week_wallet
):
    # given
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / NAME).write_bytes(clearing_csv([force("txn-1"), force("txn-2"), force("txn-3")]))
    out, err = io.StringIO(), io.StringIO()
    # when
    call_command("pull_clearing_files", "--inbox", str(inbox), stdout=out, stderr=err)
    # then
    assert f"{NAME}: ingested (3 applied, 0 replayed, 0 failed, 0 flagged)" in out.getvalue()
    assert "3/3" in err.getvalue()  # the progress bar
    assert balances(week_wallet) == (22_000, 0)
    # and again: the file is gone from the inbox, nothing to do
    call_command("pull_clearing_files", "--inbox", str(inbox), stdout=out, stderr=err)
    assert ClearingLine.objects.count() == 3


def test_given_a_memory_inbox_when_the_command_runs_then_ingested(week_wallet, memory_inbox):
    memory_inbox.pipe(f"/clearing/inbox/{NAME}", clearing_csv([force("txn-1")]))
    out = io.StringIO()
    call_command(
        "pull_clearing_files", "--inbox", "memory://clearing/inbox", "--no-progress", stdout=out
    )
    assert f"{NAME}: ingested (1 applied" in out.getvalue()
    assert balances(week_wallet) == (24_000, 0)


def test_given_a_stalled_file_when_the_beat_pulls_then_it_is_queued_again(
    tmp_path, week_wallet, queued, django_capture_on_commit_callbacks, settings
):
    # given: recorded long ago, never ingested (the broker lost the message)
    settings.CLEARING_STALL_MINUTES = 0
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / NAME).write_bytes(clearing_csv([force("txn-1")]))
    (registration,) = clearing.pull_clearing_files(inbox_url=str(inbox), enqueue=False)
    # when
    settings.CLEARING_INBOX_URL = str(inbox)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.pull_clearing_files_task() == 0
    # then
    assert queued == [registration.clearing_file.pk]


def test_given_a_stored_file_that_vanished_when_ingested_then_the_task_retries(tmp_path, db):
    # given
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / NAME).write_bytes(clearing_csv([force("txn-1")]))
    (registration,) = clearing.pull_clearing_files(inbox_url=str(inbox), enqueue=False)
    Path(registration.clearing_file.stored_url.removeprefix("file://")).unlink()
    # when / then: InboxUnavailable, which the task retries with backoff
    assert tasks.ingest_clearing_file_task.autoretry_for
    with pytest.raises(clearing.InboxUnavailable):
        clearing.ingest_clearing_file(clearing_file=registration.clearing_file)
    assert ClearingFile.objects.get().status == "received"
