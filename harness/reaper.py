"""What a pool runner needs to leave nothing of a run behind (Linux): it becomes the child subreaper of
everything its runs start, so a process whose parent ended (an evaluator of a killed runner, a daemon an
unconfined submission detached) is re-parented to it, and it can kill and reap them all. Stdlib only."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
KILL_ROUNDS = 200  # children of killed children are re-parented to us: kill until none is left


def become_subreaper() -> bool:
    """Orphans of our descendants become our children (Linux 3.4+); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return int(ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int | None = None) -> list[int]:
    """The processes whose parent is ``pid`` (this one by default), from /proc."""
    parent = os.getpid() if pid is None else pid
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()  # the name before ')' may hold anything
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and int(fields[1]) == parent:
            found.append(int(name))
    return found


def reap() -> dict[int, int]:
    """Every child that has ended, with its wait status; none waits."""
    ended: dict[int, int] = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended[pid] = status


def kill_children() -> None:
    """SIGKILL every child and reap it, again for the children re-parented to us meanwhile, until none is
    left."""
    for _ in range(KILL_ROUNDS):
        reap()
        left = children()
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
