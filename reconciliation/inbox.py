"""The clearing inbox: a directory behind an fsspec URL (`CLEARING_INBOX_URL`).

A bare path (relative to the project directory) or `file://...` is a local directory (the
default, `var/clearing/inbox/`, created when missing). Any fsspec protocol works by URL once
its package is installed, e.g. `sftp://user@host/outbox/clearing` (`pip install sshfs`, key
from the agent or ~/.ssh) or `s3://bucket/clearing/inbox` (`pip install s3fs`, credentials
from the environment or the instance role). Those packages are not in requirements.txt:
production installs the one it uses. New files are the `*.csv` directly in the directory;
once recorded they are moved to its `processed/` subfolder when the file system can move
them (if not, they stay: the content hash makes a second pull skip them anyway).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import fsspec
from django.conf import settings
from django.utils import timezone
from fsspec.implementations.local import LocalFileSystem

from config.errors import DomainError

logger = logging.getLogger("reconciliation.clearing")
PROCESSED = "processed"


class InboxUnavailable(DomainError):
    """The inbox or a file in it cannot be read now (network, permissions): try again later."""

    code = "inbox_unavailable"
    http_status = 503


@dataclass(frozen=True, slots=True)
class InboxFile:
    path: str  # in the file system's own terms (no protocol)
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class Inbox:
    fs: fsspec.AbstractFileSystem
    root: str

    @property
    def url(self) -> str:
        return self.fs.unstrip_protocol(self.root)

    def url_of(self, path: str) -> str:
        return self.fs.unstrip_protocol(path)

    def new_files(self) -> list[InboxFile]:
        """The `*.csv` files directly in the inbox, oldest name first."""
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise InboxUnavailable(f"cannot list {self.url}: {error}") from error
        files = [
            InboxFile(path=entry["name"], name=_name(entry["name"]), size=int(entry["size"] or 0))
            for entry in entries
            if entry.get("type") == "file" and entry["name"].endswith(".csv")
        ]
        return sorted(files, key=lambda file: file.name)

    def open(self, path: str) -> IO[bytes]:
        try:
            return self.fs.open(path, "rb")
        except OSError as error:
            raise InboxUnavailable(f"cannot read {self.url_of(path)}: {error}") from error

    def archive(self, path: str, *, sha256: str) -> str | None:
        """Move a recorded file to `processed/`; its new path, or None if it cannot be moved."""
        folder = f"{self.root.rstrip('/')}/{PROCESSED}"
        target = f"{folder}/{_name(path)}"
        try:
            self.fs.makedirs(folder, exist_ok=True)
            if self.fs.exists(target):  # a re-sent name: keep both
                stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
                target = f"{target}.{sha256[:12]}.{stamp}"
            self.fs.mv(path, target)
        except (OSError, NotImplementedError) as error:
            logger.warning("clearing file %s left in the inbox: %s", self.url_of(path), error)
            return None
        return target


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def open_inbox(url: str | None = None) -> Inbox:
    """The inbox at `url` (default `CLEARING_INBOX_URL`); a local one is created if missing."""
    url = str(url or settings.CLEARING_INBOX_URL)
    if "://" not in url and not url.startswith("/"):  # a bare relative path: from the project
        url = str(Path(settings.BASE_DIR) / url)
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:  # e.g. sftp:// without sshfs installed
        raise InboxUnavailable(f"cannot open the inbox {url}: {error}") from error
    if isinstance(fs, LocalFileSystem):
        fs.makedirs(root, exist_ok=True)
    return Inbox(fs=fs, root=root.rstrip("/") or "/")


def open_stored(url: str) -> IO[bytes]:
    """A recorded file, by the URL it was stored under, for reading."""
    try:
        return fsspec.open(url, "rb").open()
    except (OSError, ImportError, ValueError) as error:
        raise InboxUnavailable(f"cannot read {url}: {error}") from error
