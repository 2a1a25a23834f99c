"""The gateway's side of the login agent (login_agent_script.py): one process on a site's login node per
connection, on ONE channel, that follows every run's output and submits bundles.

Following: sshd allows 10 channels per connection, so a `tail -F` per run stops at a handful of runs; the
agent follows any number of output files and sends each line framed as JSON with the key of the follow it
belongs to, which the job's own output cannot forge (JSON escapes it inside its string). Lines wait in a
capped queue per follow; one that falls that far behind is ended with TransportError (its reader opens it
again and skips the lines it has seen), so a slow reader never holds up the other runs.

Submitting: the bundle's files (a JSON listing, then their bytes) and sbatch's answer travel over the open
channel: one round trip, with no
channel to open and no shell or tar process to start on the login node.

A site where the agent cannot start (no python3 on the login node, `login.tail_channels: 0`) is served the
old way: a `tail -F` channel per run, a shell command per submit. It is tried again after RETRY_S.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncGenerator
from pathlib import Path

from gateway.core.commands import CompletedCommand
from gateway.core.errors import CommandError, TransportError
from gateway.running.backends import login_agent_script
from gateway.running.transport import ProcessChannel, ProcessTransport

log = logging.getLogger(__name__)
SOURCE = Path(login_agent_script.__file__).read_text()
START_TIMEOUT_S = 15.0
RETRY_S = 300.0  # after the agent could not start, the old ways are used this long before it is tried again
RETRY_SILENT_S = 10.0  # the same after it ended without a word
MAX_QUEUED_LINES = 5000  # lines waiting for one follow's reader; past this it has fallen behind


class _Follow:
    """One follow's lines, waiting for its reader."""

    def __init__(self) -> None:
        self.lines: collections.deque[str] = collections.deque()
        self.wake = asyncio.Event()
        self.broken: str | None = None

    def put(self, line: str) -> None:
        if self.broken is not None:
            return
        if len(self.lines) >= MAX_QUEUED_LINES:
            self.fail(f"its reader fell {MAX_QUEUED_LINES} lines behind")
            return
        self.lines.append(line)
        self.wake.set()

    def fail(self, why: str) -> None:
        if self.broken is None:
            self.broken = why
        self.wake.set()


class LoginAgent:
    def __init__(self, transport: ProcessTransport, site: str, python: str = "python3") -> None:
        self._transport = transport
        self._site = site
        self._argv = [python, "-c", SOURCE]
        self._channel: ProcessChannel | None = None
        self._reader: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._retry_at = 0.0  # monotonic time before which a failed start is not tried again
        self._ids = itertools.count(1)
        self._follows: dict[int, _Follow] = {}
        self._answers: dict[int, asyncio.Future[CompletedCommand]] = {}
        self.starts = 0  # agents started (tests and benchmarks read it)

    async def ready(self) -> bool:
        """Start the agent if it is not running; False when it cannot run here (use the old ways).
        Raises TransportError when the connection fails."""
        if self._channel is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        async with self._start_lock:
            if self._channel is not None:
                return True
            channel = await self._transport.open_process(self._argv)
            if channel is None:
                self._retry_at = float("inf")  # the site's configuration: it will not change
                return False
            try:
                first = await asyncio.wait_for(channel.readline(), START_TIMEOUT_S)
            except TimeoutError:
                first = b"(no answer)"
            if first.strip() != b'["ready", 1]':
                channel.close()
                # silence is most likely the connection going away: try again soon; words (python3 not
                # found, an old Python's error) will be the same next time
                self._retry_at = time.monotonic() + (RETRY_S if first else RETRY_SILENT_S)
                log.warning(
                    "site %s: the login agent did not start (%r); following output with a channel per run "
                    "and submitting with a command each, for %.0f s",
                    self._site,
                    first[:300],
                    self._retry_at - time.monotonic(),
                )
                return False
            self._channel = channel
            self.starts += 1
            self._reader = asyncio.create_task(self._read(channel))
            return True

    def _send(self, request: list[object], body: bytes = b"") -> ProcessChannel:
        channel = self._channel
        if channel is None:
            raise TransportError(f"site {self._site}: the login agent is not running")
        channel.write(json.dumps(request).encode() + b"\n" + body)
        return channel

    async def follow(self, path: str) -> AsyncGenerator[str, None]:
        """The lines of the file at ``path`` from its start, as they are written, until closed. Raises
        TransportError when the agent or its connection ends, or this reader fell too far behind."""
        key = next(self._ids)
        follow = self._follows[key] = _Follow()
        channel: ProcessChannel | None = None
        try:
            channel = self._send(["follow", key, path])
            while True:
                while follow.lines:
                    yield follow.lines.popleft()
                if follow.broken is not None:
                    raise TransportError(f"site {self._site}: following {path} stopped: {follow.broken}")
                follow.wake.clear()
                await follow.wake.wait()
        finally:
            if self._follows.pop(key, None) is not None and channel is not None and self._channel is channel:
                channel.write(json.dumps(["unfollow", key]).encode() + b"\n")

    async def submit(
        self, workdir: str, run_id: str, sbatch: str, files: list[tuple[str, bytes, int]], timeout: float
    ) -> CompletedCommand:
        """Write ``files`` (path in the bundle, content, mode) into ``<workdir>/<run_id>/`` and run
        ``sbatch --parsable <workdir>/<run_id>/job.sh`` on the login node: sbatch's exit code and output
        (125 when the agent could not write the bundle or start sbatch).
        TransportError when the agent or its connection ended first (it may have submitted all the same);
        CommandError(timed_out) after ``timeout``."""
        argv = ("login-agent", "submit", run_id)
        request_id = next(self._ids)
        answer = self._answers[request_id] = asyncio.get_running_loop().create_future()
        try:
            listing = [[name, mode, len(data)] for name, data, mode in files]
            body = b"".join(data for _, data, _ in files)
            self._send(["submit", request_id, workdir, run_id, sbatch, listing], body)
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError as exc:
            raise CommandError(argv, None, "", "", timed_out=True) from exc
        finally:
            self._answers.pop(request_id, None)

    async def _read(self, channel: ProcessChannel) -> None:
        why = "the login agent ended"
        try:
            while raw := await channel.readline():
                frame = _frame(raw)
                if frame is None:
                    why = f"the login agent said {raw[:300]!r}"
                    break
                kind, key, rest = frame
                if kind == "line":
                    follow = self._follows.get(key)
                    if follow is not None:
                        follow.put(str(rest[0]))
                    continue
                answer = self._answers.get(key)
                if answer is not None and not answer.done():
                    code, out, err = rest
                    argv = ("login-agent", "submit")
                    answer.set_result(CompletedCommand(argv, int(str(code)), str(out), str(err)))
        finally:
            self._lost(channel, why)

    def _lost(self, channel: ProcessChannel, why: str) -> None:
        """The agent ended (or its connection did): fail every follow and answer waiting on it."""
        channel.close()
        if self._channel is not channel:
            return
        self._channel = None
        log.info("site %s: %s; it starts again on next use", self._site, why)
        for follow in self._follows.values():
            follow.fail(why)
        self._follows.clear()
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(TransportError(f"site {self._site}: {why}"))

    async def close(self) -> None:
        channel, reader = self._channel, self._reader
        if channel is not None:
            self._lost(channel, "the login agent was closed")
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def _frame(raw: bytes) -> tuple[str, int, list[object]] | None:
    """One frame of the agent's output, checked: ("line", key, [text]) or ("done", id, [code, out, err])."""
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(frame, list) or len(frame) < 2 or not isinstance(frame[1], int):
        return None
    kind, key, rest = frame[0], frame[1], frame[2:]
    if kind == "line" and len(rest) == 1 and isinstance(rest[0], str):
        return kind, key, rest
    if kind == "done" and len(rest) == 3 and isinstance(rest[0], int):
        return kind, key, rest
    return None
