"""munged: one key in the state folder, run as the munge user, on the default socket Slurm uses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from gateway.devstack.errors import DevStackError
from gateway.devstack.paths import MUNGE_SOCKET, Paths
from gateway.devstack.proc import chown, running_pid, say, spawn, stop, tail, wait_until

PART = "munged"
SYSTEM_KEY = Path("/etc/munge/munge.key")


def _key(paths: Paths) -> Path:
    key = paths.munge / "munge.key"
    if key.exists():
        return key
    if SYSTEM_KEY.exists():
        shutil.copyfile(SYSTEM_KEY, key)
        say(f"munge: reusing {SYSTEM_KEY}")
    else:
        with Path("/dev/urandom").open("rb") as rnd:
            key.write_bytes(rnd.read(1024))
    key.chmod(0o600)
    chown(key, "munge")
    return key


def _works() -> bool:
    encode = subprocess.run(["munge", "-n"], capture_output=True, check=False, timeout=5)
    if encode.returncode != 0:
        return False
    decode = subprocess.run(["unmunge"], input=encode.stdout, capture_output=True, check=False, timeout=5)
    return decode.returncode == 0


def pid(paths: Paths) -> int | None:
    return running_pid(paths.pidfile(PART), "munged")


def start(paths: Paths) -> str:
    running = pid(paths)
    if running:
        return f"already up (pid {running})"
    paths.munge.mkdir(mode=0o700, exist_ok=True)
    chown(paths.munge, "munge")
    MUNGE_SOCKET.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    chown(MUNGE_SOCKET.parent, "munge")
    key = _key(paths)
    log = paths.munge / "munged.log"
    argv = [
        "/usr/sbin/munged",
        "--foreground",
        f"--key-file={key}",
        f"--pid-file={paths.munge / 'munged.pid'}",
        f"--log-file={log}",
        f"--seed-file={paths.munge / 'munged.seed'}",
        f"--socket={MUNGE_SOCKET}",
        "--force",
    ]
    new = spawn(argv, pidfile=paths.pidfile(PART), log=paths.log(PART), user="munge")
    try:
        wait_until(_works, what="munged", timeout=15, log=log, pid=new)
    except DevStackError as exc:
        raise DevStackError(f"{exc}\nTail of {paths.log(PART)} (stdout):\n{tail(paths.log(PART))}") from exc
    return f"started (pid {new})"


def stop_part(paths: Paths) -> str | None:
    running = pid(paths)
    if running is None:
        return None
    return stop(running)
