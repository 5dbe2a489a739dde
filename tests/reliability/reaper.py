"""Ends a reliability stack whose test session died without closing it (SIGKILL, a crash).

`python -m tests.reliability.reaper PARENT_PID STACK_DIR KEEP`, started by `Stack.start`
and stopped by `Stack.close`. Once PARENT_PID is gone it SIGKILLs every process whose
environment names STACK_DIR, stops the private PostgreSQL (a daemon, so no process group
of ours holds it) and removes the directory unless KEEP is "True".
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

from tests.reliability.stack import PrivatePostgres, marked_pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(parent: int, root: Path, keep: bool) -> None:
    while alive(parent) and os.getppid() == parent:
        time.sleep(1)
    for pid in marked_pids(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    if (root / "pg" / "data").exists():
        PrivatePostgres(root / "pg").stop(mode="immediate")
    if not keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "True")
