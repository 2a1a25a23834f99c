"""Workers: claim queued runs from PostgreSQL and see each through to its recorded end.

Any number of workers, on any number of machines, share one queue. A worker claims runs with
``FOR UPDATE SKIP LOCKED`` (no two hold the same run), heart-beats its claims, and wakes on NOTIFY when
runs are queued or a cancel is requested. A run whose worker stopped heart-beating is claimed again by
another, which finds the run's Slurm job by its name instead of submitting it again
(gateway.service.processor.RunProcessor.process). A worker that stops cleanly gives its claims back so another
takes them over at once. Built from the run processor and the store; the service makes its workers with
``Gateway.worker``, and nothing here imports the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Iterable
from typing import Any

from gateway.config.tasks import TaskDefinition
from gateway.core.errors import GatewayError, StoreError
from gateway.running.execution import RunReport
from gateway.service.model import Claim, EventCallback
from gateway.service.pools import SWEEP_S as POOL_SWEEP_S
from gateway.service.processor import RunProcessor, report_of
from gateway.store import CANCEL_CHANNEL, QUEUE_CHANNEL, ClaimedRun, Store

log = logging.getLogger(__name__)
RETRY_S = 1.0
FOLLOW_SLICE_S = 2.0  # how long a submitter follows runs others hold before trying to claim them again


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    def __init__(
        self,
        processor: RunProcessor,
        store: Store,
        *,
        name: str | None = None,
        concurrency: int | None = None,
    ) -> None:
        settings = processor.settings
        self.processor = processor
        self.store = store
        self.name = name or worker_name()
        self.concurrency = concurrency or settings.worker_concurrency
        self.heartbeat_s = settings.worker_heartbeat_s
        self.stale_after_s = settings.worker_stale_s
        self.processed = 0
        self._claims: dict[str, Claim] = {}
        self._tasks: dict[str, asyncio.Task[RunReport]] = {}
        self._wake = asyncio.Event()
        self._task: TaskDefinition | None = None  # the drained runs' task, when the submitter parsed it

    # -- the long-running worker ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_event: EventCallback | None = None) -> None:
        """Claim and process runs until ``stop`` is set; then give back the claims of unfinished runs."""
        helpers = [
            asyncio.create_task(self._heartbeats()),
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._pool_sweeps()),
        ]
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                self._wake.clear()  # before claiming: a run queued during the claim wakes the next round
                free = self.concurrency - len(self._tasks)
                if free > 0:
                    await self._claim(free, None, on_event)
                waits: set[asyncio.Future[Any]] = {stopping, asyncio.ensure_future(self._wake.wait())}
                waits |= set(self._tasks.values())
                # poll now and then too: stale claims of dead workers send no notification
                done, _ = await asyncio.wait(
                    waits, timeout=self.stale_after_s / 3, return_when="FIRST_COMPLETED"
                )
                for waiter in waits - done - set(self._tasks.values()) - {stopping}:
                    waiter.cancel()
                self._reap()
        finally:
            stopping.cancel()
            await self._give_back()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    # -- a submitter's own runs -------------------------------------------------------------------------

    async def drain(
        self, run_ids: list[str], on_event: EventCallback | None = None, task: TaskDefinition | None = None
    ) -> dict[str, RunReport]:
        """See ``run_ids`` through: process those this worker can claim; follow those another worker
        holds (taking them over if it stops). Returns every run's report. Cancelled (Ctrl-C): the jobs
        of the runs it holds are cancelled and recorded as such. ``task``: the task of every one of these
        runs (one submission's), when the caller has it parsed already."""
        self._task = task
        pending = set(run_ids)
        reports: dict[str, RunReport] = {}
        seen = 0  # the last event of others' runs already passed on
        heartbeats = asyncio.create_task(self._heartbeats())
        try:
            while pending:
                await self._claim(len(pending), sorted(pending - self._tasks.keys()), on_event)
                if self._tasks:
                    await asyncio.wait(
                        list(self._tasks.values()), timeout=FOLLOW_SLICE_S, return_when="FIRST_COMPLETED"
                    )
                    for run_id, report in self._reap().items():
                        reports[run_id] = report
                        pending.discard(run_id)
                else:
                    finished, seen = await self._follow(pending, on_event, seen)
                    for run_id, report in finished.items():
                        reports[run_id] = report
                        pending.discard(run_id)
        finally:
            for running in self._tasks.values():
                running.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            heartbeats.cancel()
            await asyncio.gather(heartbeats, return_exceptions=True)
        return reports

    async def _follow(
        self, runs: set[str], on_event: EventCallback | None, after_id: int
    ) -> tuple[dict[str, RunReport], int]:
        """Follow runs other workers hold for a slice of time (then the caller tries to claim them again:
        their worker may have stopped, or a claim skipped them while a sibling's result was recorded).
        Returns the runs that finished, and the last event seen."""
        finished: dict[str, RunReport] = {}
        last = after_id
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FOLLOW_SLICE_S):
                async for event in self.store.follow(sorted(runs), after_id):
                    last = event.id
                    if event.kind != "finished":
                        if on_event is not None and event.message != "queued":
                            await on_event(event.run_id, event.message)
                        continue
                    record = await self.store.get_run(event.run_id)
                    if record is not None:
                        finished[event.run_id] = report_of(record)
                        if on_event is not None:
                            await on_event(event.run_id, event.message)
        return finished, last

    # -- shared machinery ----------------------------------------------------------------------------

    async def _claim(self, limit: int, only: list[str] | None, on_event: EventCallback | None) -> None:
        if only is not None and not only:
            return
        try:
            claimed = await self.store.claim(self.name, limit, self.stale_after_s, only)
        except StoreError as exc:
            log.warning("worker %s: cannot claim runs: %s", self.name, exc)
            await asyncio.sleep(RETRY_S)
            return
        for run in claimed:
            self._start(run, on_event)

    def _start(self, run: ClaimedRun, on_event: EventCallback | None) -> None:
        if run.run_id in self._tasks:
            return  # already being followed here
        claim = Claim(self.name)
        self._claims[run.run_id] = claim
        if run.claims > 1:
            log.info("worker %s: taking over run %s (claim %d)", self.name, run.run_id, run.claims)
        self._tasks[run.run_id] = asyncio.create_task(
            self.processor.process(run, claim, on_event, self._task)
        )

    def _reap(self) -> dict[str, RunReport]:
        """Collect finished tasks: their reports (a lost or failed task has none)."""
        reports = {}
        for run_id, task in list(self._tasks.items()):
            if not task.done():
                continue
            del self._tasks[run_id]
            claim = self._claims.pop(run_id)
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                # a store outage longer than its retries: the claim goes stale and another worker finishes it
                log.error("worker %s: run %s stopped: %s", self.name, run_id, exc, exc_info=exc)
                continue
            if not claim.lost:
                reports[run_id] = task.result()
                self.processed += 1
        return reports

    def _stop(self, run_ids: Iterable[str], *, lost: bool, reason: str | None = None) -> None:
        for run_id in run_ids:
            task, claim = self._tasks.get(run_id), self._claims.get(run_id)
            if task is None or claim is None or task.done():
                continue
            claim.lost, claim.cancel_reason = lost, reason
            task.cancel()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            held_ids = list(self._tasks)
            try:
                lost, cancel = await self.store.heartbeat(self.name, held_ids)
            except StoreError as exc:
                log.warning("worker %s: heartbeat failed: %s", self.name, exc)
                continue
            if lost:
                log.warning(
                    "worker %s: lost the claim on %s; another worker has them", self.name, sorted(lost)
                )
            self._stop(lost, lost=True)
            self._stop(cancel, lost=False, reason="cancelled on request")

    async def _pool_sweeps(self) -> None:
        """Warm pools checked against Slurm now and then (their own output tells them ready or ended at
        once; this catches a pool whose job Slurm ended, or one another worker started and left)."""
        while True:
            await asyncio.sleep(POOL_SWEEP_S)
            try:
                await self.processor.pools.sweep()
            except GatewayError as exc:
                log.warning("worker %s: warm pools not checked: %s", self.name, exc)

    async def _listen(self) -> None:
        """Wake on queued runs and act on cancel requests at once; reconnect if the connection drops."""
        while True:
            try:
                async with self.store.notifications(QUEUE_CHANNEL, CANCEL_CHANNEL) as queue:
                    self._wake.set()  # re-read the queue: notifications may have been missed while away
                    while True:
                        channel, payload = await queue.get()
                        if channel == "":
                            break
                        if channel == CANCEL_CHANNEL:
                            self._stop([payload], lost=False, reason="cancelled on request")
                        else:
                            self._wake.set()
            except GatewayError as exc:
                log.info("worker %s: notifications unavailable (%s); retrying", self.name, exc)
            await asyncio.sleep(RETRY_S)

    async def _give_back(self) -> None:
        """Stop following (jobs keep running) and release the claims so another worker re-attaches at once."""
        unfinished = [run_id for run_id, task in self._tasks.items() if not task.done()]
        self._stop(unfinished, lost=True)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._reap()
        if unfinished:
            try:
                await self.store.release(self.name, unfinished)
            except StoreError as exc:
                log.warning(
                    "worker %s: could not release %d claims (they go stale): %s",
                    self.name,
                    len(unfinished),
                    exc,
                )
