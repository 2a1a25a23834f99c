"""Process helpers: run a command, start a daemon with a recorded PID, check and stop it.

A killed daemon can stay a zombie for a while (PID 1 reaps late here), so liveness is read from the state
field of /proc/PID/stat, never from ``kill -0``.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gateway.devstack.errors import DevStackError


def say(message: str) -> None:
    print(message, flush=True)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def pid_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, D, Z, ...), or None when there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return None
    fields = data[data.rfind(")") + 2 :].split()
    return fields[0] if fields else None


def alive(pid: int) -> bool:
    return pid_state(pid) not in (None, "Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def running_pid(pidfile: Path, program: str) -> int | None:
    """The recorded PID when that process is alive and still runs ``program`` (guards PID reuse)."""
    pid = read_pid(pidfile)
    if pid is None or not alive(pid):
        return None
    argv = cmdline(pid)
    if argv and not any(program in part for part in argv[:1]):
        return None
    return pid


def user_env(user: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    entry = pwd.getpwnam(user)
    env = dict(os.environ if base is None else base)
    env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    return env


def _user_kwargs(user: str | None) -> dict[str, object]:
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def run(
    argv: Sequence[str],
    *,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell); raise DevStackError with its output when it fails."""
    try:
        done = subprocess.run(  # type: ignore[call-overload]
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            cwd=cwd,
            check=False,
            **_user_kwargs(user),
        )
    except subprocess.TimeoutExpired as exc:
        raise DevStackError(f"{' '.join(argv)} timed out after {timeout} s") from exc
    except OSError as exc:
        raise DevStackError(f"could not run {' '.join(argv)}: {exc}") from exc
    result: subprocess.CompletedProcess[str] = done
    if check and result.returncode != 0:
        output = (result.stderr.strip() + "\n" + result.stdout.strip()).strip()
        lines = "\n".join(output.splitlines()[-25:])
        raise DevStackError(f"{' '.join(argv)} exited {result.returncode}:\n{lines}")
    return result


def spawn(
    argv: Sequence[str],
    *,
    pidfile: Path,
    log: Path,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a foreground daemon detached from us, its output appended to ``log``; record its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        try:
            proc = subprocess.Popen(  # type: ignore[call-overload]
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                **_user_kwargs(user),
            )
        except OSError as exc:
            raise DevStackError(f"could not start {' '.join(argv)}: {exc}") from exc
    pid: int = proc.pid
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{pid}\n")
    return pid


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_free(port: int, what: str) -> None:
    """Fail before starting ``what`` when something else already listens on its port."""
    if port_open(port):
        raise DevStackError(
            f"cannot start {what}: 127.0.0.1:{port} is already in use by another process "
            f"(see `ss -ltnp 'sport = :{port}'`)"
        )


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log: Path,
    pid: int | None = None,
) -> None:
    """Poll ``ready`` until it holds; fail early when ``pid`` died, with the log's tail either way."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if pid is not None and not alive(pid):
            raise DevStackError(f"{what}: the process {pid} exited. Tail of {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise DevStackError(f"{what}: not ready after {timeout:.0f} s. Tail of {log}:\n{tail(log)}")
        time.sleep(0.1)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(pid: int, timeout: float = 10.0) -> str:
    """SIGTERM, wait up to ``timeout`` for absence or zombie, then SIGKILL. Says what happened."""
    if not alive(pid):
        return "was not running"
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "was not running"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid):
            return "stopped"
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    for _ in range(100):
        _reap(pid)
        if not alive(pid):
            break
        time.sleep(0.05)
    return "killed after SIGTERM timed out"


def chown(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
