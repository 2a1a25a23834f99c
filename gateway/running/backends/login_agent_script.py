"""The login agent: a small program the gateway starts on a site's login node over its open SSH connection
(`python3 -c <this file's source>`), one per connection, on ONE channel. Standard library only, Python 3.6+.

It does two things for the gateway:
- follows many runs' output files at once (sshd allows 10 channels per connection; a run may not need one
  of its own): every line a file gains goes out as one JSON array ``["line", key, text]``. JSON escapes
  every newline and quote, so what a job prints, fake frames included, stays inside its own string and
  can never pass for another run's line;
- submits run bundles: writes the bundle's files into the work folder and runs sbatch, in a thread (one
  round trip on the open channel, no shell and no tar), answering ``["done", id, exit code, stdout, stderr]``.

Requests come on stdin, one JSON array a line: ``["follow", key, path]`` (from the file's start; a file
replaced under the same name is followed anew, as ``tail -F`` does), ``["unfollow", key]``,
``["submit", id, workdir, run_id, sbatch, [[name, mode, size], ...]]`` followed by the files' bytes, one
after another. It says ``["ready", 1]`` first and ends when
stdin closes (the gateway's channel went away), so it never outlives its connection.
"""

import io
import json
import os
import select
import subprocess
import sys
import threading
import time

MAX_LINE = 4096  # characters kept of a line; the rest of it is dropped
MAX_READ = 1 << 20  # bytes read from one file per tick: a flood cannot starve the other runs
MAX_OUTPUT = 64 * 1024  # of sbatch's stdout and stderr each
TICK_S = 0.05  # how often followed files are looked at without a change seen (inotify) first
MIN_SCAN_S = 0.005  # how often at most when changes are seen
SUBMIT_TIMEOUT_S = 60.0

_write_lock = threading.Lock()


def emit(frame: "list[object]") -> None:
    data = (json.dumps(frame) + "\n").encode("ascii")  # ensure_ascii: exactly one line, whatever the text
    with _write_lock:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


class Followed:
    """One followed file: where it was read to, and the part of a line not ended yet."""

    def __init__(self, key: int, path: str) -> None:
        self.key = key
        self.path = path
        self.handle: io.BufferedReader | None = None
        self.inode: tuple[int, int] | None = None
        self.pending = bytearray()
        self.skipping = False  # inside a line longer than MAX_LINE: drop up to its end

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def poll(self) -> None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return  # not there (yet)
        if self.handle is None or (stat.st_dev, stat.st_ino) != self.inode:
            self.close()  # first look, or the file was replaced: follow the new one from its start
            try:
                self.handle = open(self.path, "rb")  # kept open across ticks
            except OSError:
                return
            self.inode = (stat.st_dev, stat.st_ino)
            self.pending, self.skipping = bytearray(), False
        elif stat.st_size < self.handle.tell():
            self.handle.seek(0)  # truncated
            self.pending, self.skipping = bytearray(), False
        data = self.handle.read(MAX_READ)
        if data:
            self.take(data)

    def take(self, data: bytes) -> None:
        self.pending += data
        while True:
            end = self.pending.find(b"\n")
            if end < 0:
                if len(self.pending) > MAX_LINE and not self.skipping:
                    self.line(bytes(self.pending[:MAX_LINE]))
                    self.skipping = True
                if self.skipping:
                    del self.pending[:]
                return
            if not self.skipping:
                self.line(bytes(self.pending[:end]))
            self.skipping = False
            del self.pending[: end + 1]

    def line(self, raw: bytes) -> None:
        emit(["line", self.key, raw[:MAX_LINE].decode("utf-8", "replace")[:MAX_LINE]])


def write_bundle(workdir: str, run_id: str, listing: "list[list[object]]", body: bytes) -> None:
    """The bundle's files (``[name, mode, size]`` each, their bytes one after another in ``body``) into
    ``<workdir>/<run_id>/``: names relative, without "..", folders 0700 (code and key are private)."""
    root = os.path.join(workdir, run_id)
    if not run_id or run_id.startswith((".", "-")) or "/" in run_id:
        raise ValueError(f"not a run id: {run_id!r}")
    os.makedirs(workdir, exist_ok=True)
    os.makedirs(root, mode=0o700, exist_ok=True)
    offset = 0
    for name, mode, size in listing:
        parts = str(name).split("/")
        if "" in parts or "." in parts or ".." in parts:
            raise ValueError(f"not a file name for a bundle: {name!r}")
        folder = root
        for part in parts[:-1]:
            folder = os.path.join(folder, part)
            if not os.path.isdir(folder):
                os.mkdir(folder, 0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(os.path.join(root, *parts), flags, int(mode) & 0o777)  # type: ignore[call-overload]
        with os.fdopen(fd, "wb") as target:
            target.write(body[offset : offset + int(size)])  # type: ignore[call-overload]
        offset += int(size)  # type: ignore[call-overload]


def submit(
    request_id: int, workdir: str, run_id: str, sbatch: str, listing: "list[list[object]]", body: bytes
) -> None:
    try:
        write_bundle(workdir, run_id, listing, body)
        done = subprocess.run(  # noqa: UP022 (capture_output is Python 3.7+; login nodes may have 3.6)
            [sbatch, "--parsable", os.path.join(workdir, run_id, "job.sh")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=SUBMIT_TIMEOUT_S,
        )
        out = done.stdout[-MAX_OUTPUT:].decode("utf-8", "replace")
        emit(["done", request_id, done.returncode, out, done.stderr[-MAX_OUTPUT:].decode("utf-8", "replace")])
    except Exception as exc:  # every failure is an answer; the agent lives on
        emit(["done", request_id, 125, "", f"login agent: {type(exc).__name__}: {exc}"])


class Watcher:
    """Wakes the agent when a followed file's folder changes: Linux's inotify through ctypes. Where it
    cannot start the agent looks every TICK_S alone, as it must on NFS anyway (a file a compute node writes
    raises no event on the login node)."""

    MASK = 0x2 | 0x8 | 0x80 | 0x100  # IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = int(self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
        if self.fd < 0:
            raise OSError("inotify_init1 failed")
        self.folders: dict[str, list[int]] = {}  # folder -> [watch descriptor, follows in it]

    def add(self, path: str) -> None:
        folder = os.path.dirname(path)
        entry = self.folders.get(folder)
        if entry is not None:
            entry[1] += 1
            return
        watch = int(self.libc.inotify_add_watch(self.fd, folder.encode(), self.MASK))
        if watch >= 0:  # else (no such folder yet, too many watches) the tick finds the changes
            self.folders[folder] = [watch, 1]

    def remove(self, path: str) -> None:
        folder = os.path.dirname(path)
        entry = self.folders.get(folder)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                del self.folders[folder]
                self.libc.inotify_rm_watch(self.fd, entry[0])  # fails harmlessly for a removed folder

    def drain(self) -> None:
        try:
            while os.read(self.fd, 1 << 16):
                pass
        except OSError:  # EAGAIN: nothing more to read
            pass


def start_watcher() -> "Watcher | None":
    try:
        return Watcher()
    except (OSError, AttributeError):
        return None


def more_open_files() -> None:
    """Each followed file stays open: allow as many as the login node lets us (a soft limit of 1024 would
    stop following at a thousand runs in flight)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError):
        pass


def serve() -> None:
    followed: dict[int, Followed] = {}
    more_open_files()
    watcher = start_watcher()
    received = bytearray()
    waiting: list[object] | None = None  # a submit whose files have not all come yet
    need = 0
    emit(["ready", 1])
    last_scan = 0.0
    while True:
        since = time.monotonic() - last_scan
        # a flood of changes is looked at every MIN_SCAN_S at most
        listen = watcher is not None and since >= MIN_SCAN_S
        fds = [0, watcher.fd] if listen and watcher is not None else [0]
        timeout = max(0.0, (TICK_S if listen or watcher is None else MIN_SCAN_S) - since)
        readable, _, _ = select.select(fds, [], [], timeout)
        if 0 in readable:
            chunk = os.read(0, 1 << 20)
            if not chunk:
                return  # stdin closed: the gateway is gone
            received += chunk
            while True:
                if waiting is not None:
                    if len(received) < need:
                        break
                    body = bytes(received[:need])
                    del received[:need]
                    args = (*waiting[1:6], body)
                    threading.Thread(target=submit, args=args, daemon=True).start()
                    waiting = None
                    continue
                end = received.find(b"\n")
                if end < 0:
                    break
                request = json.loads(bytes(received[:end]).decode("ascii"))
                del received[: end + 1]
                if request[0] == "follow":
                    entry = Followed(int(request[1]), str(request[2]))
                    old = followed.pop(entry.key, None)
                    if old is not None:
                        old.close()
                        if watcher is not None:
                            watcher.remove(old.path)
                    followed[entry.key] = entry
                    if watcher is not None:
                        watcher.add(entry.path)
                    entry.poll()
                elif request[0] == "unfollow":
                    gone = followed.pop(int(request[1]), None)
                    if gone is not None:
                        gone.close()
                        if watcher is not None:
                            watcher.remove(gone.path)
                elif request[0] == "submit":
                    waiting, need = request, sum(int(size) for _, _, size in request[5])
        changed = watcher is not None and watcher.fd in readable
        if changed and watcher is not None:
            watcher.drain()
        if changed or time.monotonic() - last_scan >= TICK_S:
            last_scan = time.monotonic()
            for entry in list(followed.values()):
                entry.poll()


if __name__ == "__main__":
    serve()
