"""Follows jobs on one backend: ONE status query per round for every tracked job, adaptive interval.

A round asks the backend about every job still open; terminal states are cached by the backend. A change
of state, reason or (Slurm) expected start is passed to the job's ``on_change``. The
interval starts short (a job on an idle cluster ends in about a second) and grows while nothing changes.
Transient failures (a dropped connection, a slow controller) are tolerated and retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.core.errors import BackendError, CommandError, TransportError
from gateway.core.states import JobState
from gateway.running.backends.base import Backend, JobHandle, JobStatus

log = logging.getLogger(__name__)
StateCallback = Callable[[JobHandle, JobStatus], Awaitable[None]]
# How long the site may fail to answer, or a job may be in neither squeue nor sacct, before its waiters
# are told so (a restarted sshd or controller comes back well within this).
GIVE_UP_AFTER_S = 120.0


@dataclass
class _Tracked:
    handle: JobHandle
    done: asyncio.Future[JobStatus]
    on_change: StateCallback | None = None
    last: JobStatus | None = None
    unknown_since: float | None = None


class Monitor:
    def __init__(
        self,
        backend: Backend,
        *,
        min_interval_s: float = 0.25,
        max_interval_s: float = 3.0,
        on_change: StateCallback | None = None,
        give_up_after_s: float = GIVE_UP_AFTER_S,
    ) -> None:
        self._give_up_after = give_up_after_s
        self._backend = backend
        self._min = min_interval_s
        self._max = max_interval_s
        self._on_change = on_change
        self._tracked: dict[str, _Tracked] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    async def wait(self, handle: JobHandle, on_change: StateCallback | None = None) -> JobStatus:
        """Return the job's terminal status once a round sees it."""
        entry = _Tracked(handle, asyncio.get_running_loop().create_future(), on_change or self._on_change)
        self._tracked[handle.job_id] = entry
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name=f"monitor-{self._backend.name}")
        try:
            return await entry.done
        finally:
            # a waiter that leaves (cancelled: the run was abandoned, or its result was pushed) is followed
            # no more: a later round must not call its on_change, which would rewrite a run being recorded
            if self._tracked.get(handle.job_id) is entry:
                del self._tracked[handle.job_id]

    async def _loop(self) -> None:
        interval = self._min
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while self._tracked:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            if self._wake.is_set():
                interval = self._min  # a new job: look soon
            entries = list(self._tracked.values())
            try:
                states = await self._backend.status([e.handle for e in entries])
            except (TransportError, CommandError, BackendError) as exc:
                failing_since = failing_since or loop.time()
                log.warning("status round failed: %s", exc)
                if loop.time() - failing_since > self._give_up_after:
                    for entry in entries:
                        self._finish(
                            entry,
                            BackendError(f"the site has not answered for {self._give_up_after:.0f} s: {exc}"),
                        )
                interval = min(self._max, interval * 2)
                continue
            failing_since = None
            self.rounds += 1
            changed = False
            for entry in entries:
                status = states.get(entry.handle.job_id)
                if status is not None and status.state is JobState.UNKNOWN:
                    entry.unknown_since = entry.unknown_since or loop.time()
                    if loop.time() - entry.unknown_since > self._give_up_after:
                        self._finish(
                            entry,
                            BackendError(
                                f"job {entry.handle.job_id} has been in neither squeue nor sacct for "
                                f"{self._give_up_after:.0f} s"
                            ),
                        )
                        continue
                elif status is not None:
                    entry.unknown_since = None
                if status is None or status == entry.last:
                    continue
                # a new start estimate alone is passed on, but does not make the next round come sooner
                # (the scheduler revises estimates on its own clock)
                changed = (
                    changed
                    or entry.last is None
                    or (status.state, status.reason)
                    != (
                        entry.last.state,
                        entry.last.reason,
                    )
                )
                entry.last = status
                if entry.on_change is not None:
                    await entry.on_change(entry.handle, status)
                if status.state.is_terminal:
                    self._finish(entry, status)
            interval = self._min if changed else min(self._max, interval * 1.5)

    def forget(self, handle: JobHandle) -> None:
        """Stop following a job whose result arrived another way (pushed over the output stream); its
        waiter gets CancelledError."""
        entry = self._tracked.pop(handle.job_id, None)
        if entry is not None and not entry.done.done():
            entry.done.cancel()

    @property
    def tracked(self) -> int:
        return len(self._tracked)

    def _finish(self, entry: _Tracked, outcome: JobStatus | Exception) -> None:
        self._tracked.pop(entry.handle.job_id, None)
        if entry.done.done():
            return
        if isinstance(outcome, Exception):
            entry.done.set_exception(outcome)
        else:
            entry.done.set_result(outcome)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
