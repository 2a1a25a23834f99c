"""Running one job to its end on one site: submit, follow (pushed output + the batched safety net),
verify the result, and start it again when the site's requeue policy says the end was not the
submission's fault.

The result is pushed: the job's output is tailed over the open connection, and the moment the trusted
runner prints that result.json is written, the gateway fetches and verifies it. The monitor's one squeue
per site per round is the safety net for a stream that broke or never got a channel.

User code can print the "result written" line too. Only the first one makes the gateway look (one fetch,
verified off the event loop); when that is not the result, every later one is only counted, and the
result is read when the job ends. A run that printed such lines says how many in one event at its end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from gateway.core.errors import BackendError, ResultError, TransportError
from gateway.core.states import HELD_STATES, TERMINAL_MESSAGES, JobState, describe_pending_reason
from gateway.core.waiting import waiting_message, worth_telling
from gateway.running.backends.base import (
    RESULT_WRITTEN_MARKER,
    Backend,
    BundleFiles,
    JobHandle,
    JobRequest,
    JobStatus,
)
from gateway.running.monitor import Monitor
from gateway.running.results import verified_ncu_report, verified_result
from harness.ncu import REPORT_LIMIT as NCU_REPORT_LIMIT
from harness.protocol import PROGRESS_PREFIX
from harness.run_result import RunResult

log = logging.getLogger(__name__)
OUTPUT_KEEP_BYTES = 64 * 1024  # job output kept per run (the last this many bytes of lines)
# Progress lines (anything printed with the harness's prefix, submissions included) that become run events;
# under the store's cap of events per run, so state changes and the end still fit
MAX_PROGRESS_EVENTS = 400
EVENTS_KEEP = 500
STREAM_RETRY_S = 1.0


class Event(Protocol):
    """Where a run's events go: state changes, and the harness's progress lines (progress=True)."""

    async def __call__(self, message: str, *, progress: bool = False) -> None: ...


Persist = Callable[["RunReport", JobStatus | None], Awaitable[None]]


@dataclass
class RunReport:
    run_id: str
    user: str
    file_name: str
    site: str
    partition: str
    gpu_type: str
    job_id: str | None = None
    attempt: int = 1
    state: JobState = JobState.QUEUED
    result: RunResult | None = None
    score: float | None = None
    error: str | None = None
    leaderboard: str | None = None
    secret_passed: bool | None = None  # the secret rerun's verdict (leaderboard mode), once it finished
    pushed: bool = False  # the result arrived over the output stream, before Slurm reported the end
    forged_markers: int = 0  # "result written" lines in the output that did not come with the result
    progress_lines: int = 0  # progress lines the job printed (only the first MAX_PROGRESS_EVENTS are events)
    result_at: float | None = None  # time.time() when the verified result was in hand
    events: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=EVENTS_KEEP))
    output: collections.deque[str] = field(default_factory=collections.deque)
    output_bytes: int = 0
    handle: JobHandle | None = field(default=None, repr=False)
    ncu_report: bytes | None = field(default=None, repr=False)  # profile mode's Nsight Compute report

    @property
    def passed(self) -> bool:
        return self.error is None and self.result is not None and self.result.passed

    @property
    def output_tail(self) -> str:
        return "\n".join(self.output)

    def keep_output(self, line: str) -> None:
        """Keep the job's output, capped: the oldest lines go first."""
        self.output.append(line)
        self.output_bytes += len(line) + 1
        while self.output_bytes > OUTPUT_KEEP_BYTES and len(self.output) > 1:
            self.output_bytes -= len(self.output.popleft()) + 1


@dataclass
class SiteRuntime:
    """One backend (so one SSH connection) and one monitor per site."""

    backend: Backend
    monitor: Monitor


async def execute(
    runtime: SiteRuntime,
    job: JobRequest,
    report: RunReport,
    event: Event,
    persist: Persist,
) -> None:
    """Run ``job`` until it has a verified result or a final error, starting it again while the site's
    requeue policy allows. A job marked maybe_submitted is found on the site, not submitted twice."""
    try:
        await _attempts(runtime, job, report, event, persist)
        await _fetch_ncu_report(runtime, report, event)
    finally:
        if report.forged_markers:
            log.warning(
                'run %s: ignored %d "result written" line(s) that did not come with its result',
                job.run_id,
                report.forged_markers,
            )
    if report.forged_markers:
        await event(
            f'ignored {report.forged_markers} "result written" line(s) in the job\'s output that came '
            "without its result (printed by the submission?); its result, if any, was read when the job ended"
        )
    if report.progress_lines > MAX_PROGRESS_EVENTS:
        await event(
            f"{report.progress_lines - MAX_PROGRESS_EVENTS} progress line(s) after the first "
            f"{MAX_PROGRESS_EVENTS} were not recorded (the job printed {report.progress_lines})"
        )


async def _attempts(
    runtime: SiteRuntime,
    job: JobRequest,
    report: RunReport,
    event: Event,
    persist: Persist,
) -> None:
    policy = job.site.requeue
    while True:
        handle = (await runtime.backend.submit([job]))[0]
        again = f" (attempt {job.attempt})" if job.attempt > 1 else ""
        if job.pool is not None:
            await event(f"handed to warm pool {job.pool.pool_id} (job {job.pool.job_id}){again}")
        else:
            await event(f"submitted as job {handle.job_id}{again}")
        report.handle, report.job_id, report.attempt = handle, handle.job_id, job.attempt
        if report.state is JobState.QUEUED:
            report.state = JobState.PENDING
        await persist(report, None)
        final = await _follow(runtime, handle, job, report, event, persist)
        if report.result is not None or final is None:
            return
        # a warm pool that ended under its run was never the submission's fault: always once more, as a job
        lost_pool = job.pool is not None and final.state is JobState.NODE_FAIL and job.attempt == 1
        if policy.allows(final.state, job.attempt) or lost_pool:
            why = final.reason if lost_pool else TERMINAL_MESSAGES.get(final.state, "")
            await event(f"{final.state.value}: {why}; starting it again")
            job = replace(job, attempt=job.attempt + 1, maybe_submitted=True, pool=None)
            report.state, report.error = JobState.QUEUED, None
            continue
        return


async def _follow(
    runtime: SiteRuntime,
    handle: JobHandle,
    job: JobRequest,
    report: RunReport,
    event: Event,
    persist: Persist,
) -> JobStatus | None:
    """Follow one job; return its terminal status when the result came the slow way (or never)."""

    told: list[tuple[str, str | None, float | None]] = []  # the last state event: state, reason, start

    async def on_change(_handle: JobHandle, status: JobStatus) -> None:
        report.state = status.state
        if status.state.is_terminal:
            return
        reason = describe_pending_reason(status.reason) if status.state is JobState.PENDING else None
        if status.state in HELD_STATES:
            reason = f"held by Slurm ({status.reason or status.state.value}); an admin must release it"
        start = status.start_at if status.state is JobState.PENDING else None
        now = (status.state.value, reason, start)
        if not worth_telling(told[-1] if told else None, now):
            return  # only the estimate moved, by less than a minute: no new event
        state_changed = not told or told[-1][0] != now[0]
        told[:] = [now]
        await event(waiting_message(status.state.value, reason, start))
        if state_changed:
            await persist(report, status)

    stream = asyncio.create_task(_stream(runtime.backend, handle, job, report, event))
    waiter = asyncio.create_task(runtime.monitor.wait(handle, on_change))
    try:
        done, _ = await asyncio.wait({stream, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if stream in done and stream.exception() is None and stream.result() is not None:
            pushed = stream.result()
            assert pushed is not None
            runtime.monitor.forget(handle)
            report.pushed, report.state = True, JobState.COMPLETED
            _take_result(report, pushed, job)
            return None
        final = await waiter
    finally:
        for task in (stream, waiter):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    report.state = final.state
    try:
        raw = await runtime.backend.fetch_result(handle)
        if not report.output:
            for line in (await runtime.backend.fetch_output(handle)).splitlines()[-200:]:
                report.keep_output(line)
    except TransportError as exc:
        raise BackendError(
            f"job {handle.job_id} ended {final.state.value}, but its result cannot be read: {exc}"
        ) from exc
    if raw is None and final.state is not JobState.COMPLETED:
        report.error = TERMINAL_MESSAGES.get(final.state, f"the job ended {final.state.value}")
        return final
    try:
        result = await _verified(raw, job)
    except ResultError as exc:
        report.error = str(exc)
        return None
    _take_result(report, result, job)
    return None


async def _fetch_ncu_report(runtime: SiteRuntime, report: RunReport, event: Event) -> None:
    """Profile mode under Nsight Compute: the report the result signed, from the job's bundle (before the
    bundle is removed). A report that cannot be had is said in an event; the run's verdict stands."""
    signed = report.result.ncu if report.result is not None else None
    if not signed or "sha256" not in signed or report.handle is None:
        return
    backend = runtime.backend
    try:
        if not isinstance(backend, BundleFiles):
            raise ResultError(f"run {report.run_id}: its backend keeps no files to fetch a report from")
        data = await backend.fetch_file(report.handle, str(signed.get("file")), NCU_REPORT_LIMIT + 1)
        report.ncu_report = verified_ncu_report(data, signed, report.run_id)
    except (ResultError, TransportError) as exc:
        log.warning("%s", exc)
        await event(f"the Nsight Compute report could not be fetched: {exc}")


def _take_result(report: RunReport, result: RunResult, job: JobRequest) -> None:
    report.result, report.result_at = result, time.time()
    report.score = result.score(job.task.ranking_by)
    if not result.passed:
        report.error = result.failure_message or "the submission failed"


async def _verified(raw: bytes | None, job: JobRequest) -> RunResult:
    """The verified result, parsed and authenticated in a thread: up to 4 MiB of JSON and its HMAC take
    tens of milliseconds, which would hold up every other run this process follows."""
    return await asyncio.to_thread(verified_result, raw, job.key_hex, job.run_id)


async def _stream(
    backend: Backend, handle: JobHandle, job: JobRequest, report: RunReport, event: Event
) -> RunResult | None:
    """Tail the job's output; return the verified result as soon as the runner says it is written.
    A broken stream is reopened (skipping the lines already seen) until the monitor ends the job.

    Only the first "result written" line is acted on (one fetch); the runner prints it once, as its last
    line, so when it brought no valid result the line was the submission's, and later ones are counted in
    ``report.forged_markers`` and ignored: the monitor's safety net reads the result at the job's end."""
    seen = 0
    looked = False  # the first "result written" line was acted on
    while True:
        index = 0
        try:
            # aclosing: returning from inside the loop must stop the remote tail and free its channel now,
            # not when the generator is garbage-collected
            async with contextlib.aclosing(backend.stream_output(handle)) as lines:
                async for line in lines:
                    index += 1
                    if index <= seen:
                        continue
                    seen = index
                    report.keep_output(line)
                    marker = line.startswith(RESULT_WRITTEN_MARKER)
                    if marker and looked:
                        report.forged_markers += 1  # O(1): no event, no fetch
                        continue
                    if line.startswith(PROGRESS_PREFIX):
                        report.progress_lines += 1
                        # a flood costs O(1) a line past the budget: no event, no database round trip
                        if report.progress_lines <= MAX_PROGRESS_EVENTS:
                            await event(line[len(PROGRESS_PREFIX) :], progress=True)
                    if marker:
                        looked = True
                        raw = await backend.fetch_result(handle)
                        try:
                            return await _verified(raw, job)
                        except ResultError as exc:
                            report.forged_markers += 1
                            log.warning(
                                "run %s: %s (after a result line); later such lines are ignored and the "
                                "result is read when the job ends",
                                job.run_id,
                                exc,
                            )
            return None  # the stream ended without a result (the tail bound): the monitor decides
        except TransportError as exc:
            log.info("run %s: output stream broke (%s); reopening", job.run_id, exc)
            await asyncio.sleep(STREAM_RETRY_S)
