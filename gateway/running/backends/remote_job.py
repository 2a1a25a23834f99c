"""What runs on a fallback machine (a Modal container): unpack a job bundle, run its job script with a
time limit, hand back result.json and the tail of the job's output, and leave nothing of the run behind.

Standard library only: the Modal image imports this module and nothing else of the gateway. The bundle
is the one every site gets (harness, task, spec.json, key, job.sh); its job script is rendered with the
bundle folder as ``.``, so it runs wherever it is unpacked. The GitHub workflow
(.github/workflows/gateway-run.yml) does the same steps in shell.

Nothing outlives a run: the job script runs under a supervisor (this file run as a script, in a session
of its own) that is the "child subreaper" of everything the job starts (Linux ``PR_SET_CHILD_SUBREAPER``),
so a process that forks twice or calls setsid to get away still comes back to it as an orphan. When
the job script ends, whether it passed, failed or ran out of time, the supervisor kills every process
left under it and reaps them; the wrapper then kills whatever is left in the session and removes the
folder the bundle was unpacked in, the job's TMPDIR with it. Modal runs each container for one input
(modal_app.py), so the container itself goes too.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

OUTPUT_TAIL_BYTES = 64 * 1024
MAX_RESULT_BYTES = 4 * 1024 * 1024
KILL_GRACE_S = 5.0
SWEEP_LIMIT_S = 10.0  # killing and reaping what a job left behind; a fork bomb is outlasted within this
PR_SET_CHILD_SUBREAPER = 36


class BundleError(ValueError):
    """The archive is not one job bundle (one folder named after its run)."""


def unpack(archive: bytes, into: Path) -> Path:
    """Unpack a bundle archive (a tar, compressed or not) into ``into``; return the bundle's folder."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        tops = {PurePosixPath(name).parts[0] for name in tar.getnames() if name not in ("", ".")}
        if len(tops) != 1:
            raise BundleError(f"expected one bundle folder in the archive, found {sorted(tops)[:5]}")
        # the "data" filter refuses absolute paths, links out of the folder and device files
        tar.extractall(into, filter="data")
    root = into / tops.pop()
    if not (root / "job.sh").is_file():
        raise BundleError("the bundle has no job.sh")
    return root


def _tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - limit))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _read_result(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_RESULT_BYTES)
    except OSError:
        return None


class _Stop(Exception):
    """The supervisor was told to stop (the wrapper's time limit)."""


def _set_subreaper() -> bool:
    """Orphans of this process's descendants come back to it instead of to init (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) of every process this machine shows (empty without /proc)."""
    found = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    stat = handle.read()
            except OSError:
                continue  # gone meanwhile
            # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses
            fields = stat[stat.rfind(b")") + 2 :].split()
            found[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return found


def _descendants(root: int) -> list[int]:
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _kill(pids: list[int], sig: signal.Signals = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _sweep() -> None:
    """Kill every process under this one and reap it, until none is left (or SWEEP_LIMIT_S passed)."""
    deadline = time.monotonic() + SWEEP_LIMIT_S
    while time.monotonic() < deadline:
        _kill(_descendants(os.getpid()))
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return  # no child left: as subreaper, every orphan of the job would be one
        time.sleep(0.01)


def supervise(argv: list[str]) -> int:
    """Run ``argv`` (the job script) and return its exit code; on its end, or on SIGTERM (the wrapper's
    time limit: its group gets SIGTERM, then after KILL_GRACE_S everything SIGKILL), kill and reap
    every process it left."""
    _set_subreaper()

    def stop(_signum: int, _frame: object) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    proc = None
    try:
        proc = subprocess.Popen(argv, process_group=0)  # its own group, in the supervisor's session
        code = proc.wait()
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=KILL_GRACE_S)
        code = 124
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _sweep()
    return code if code >= 0 else 128 - code


def _kill_session(session: int) -> None:
    """SIGKILL every process of ``session`` (what a supervisor that died may have left)."""
    for _ in range(100):
        left = [pid for pid, (_, sid) in _processes().items() if sid == session]
        if not left:
            return
        _kill(left)
        time.sleep(0.01)


def run_unpacked(root: Path, time_limit_s: float, tmpdir: Path | None = None) -> dict[str, Any]:
    """Run ``root/job.sh`` (its stdout and stderr into output.log, TMPDIR ``tmpdir`` if given) for at
    most ``time_limit_s``, under the supervisor; after that its processes get SIGTERM, then SIGKILL, so
    a runaway submission cannot hold the machine, and whatever the job started is killed when it ends,
    also when it passed."""
    output = root / "output.log"
    timed_out = False
    argv = [sys.executable, "-I", os.path.abspath(__file__), "supervise", "bash", "job.sh"]
    with output.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=root,
            env=os.environ | ({"TMPDIR": str(tmpdir)} if tmpdir is not None else {}),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                exit_code: int | None = proc.wait(timeout=time_limit_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                proc.send_signal(signal.SIGTERM)  # the supervisor stops the job and sweeps
                try:
                    proc.wait(timeout=KILL_GRACE_S + SWEEP_LIMIT_S + 5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                exit_code = proc.returncode
        finally:
            if proc.poll() is None:  # interrupted (the call was cancelled): stop the job all the same
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _kill_session(proc.pid)
    return {
        "run_id": root.name,
        "exit_code": exit_code,
        "timed_out": timed_out,
        "result": _read_result(root / "result.json"),
        "output": _tail(output, OUTPUT_TAIL_BYTES),
    }


def run_bundle(archive: bytes, time_limit_s: float) -> dict[str, Any]:
    """The body of the Modal function: a fresh folder per call (the bundle, and the job's TMPDIR),
    removed afterwards whatever happened, once every process of the job is gone."""
    with tempfile.TemporaryDirectory(prefix="gateway-") as tmp:
        job_tmp = Path(tmp) / "tmp"
        job_tmp.mkdir(mode=0o700)
        return run_unpacked(unpack(archive, Path(tmp) / "bundle"), time_limit_s, job_tmp)


if __name__ == "__main__" and sys.argv[1:2] == ["supervise"]:
    sys.exit(supervise(sys.argv[2:]))
