"""What the two fallback backends (Modal, GitHub Actions) share: the bundle as one compressed archive,
status checks with backoff, a deadline after which the run is cancelled, and the result and output
kept from the one answer that carries them.

Both run the same bundle as a Slurm site (harness, task, spec.json, per-run key, job.sh), rendered with
the bundle folder as ``.`` so it runs wherever it is unpacked (gateway/running/backends/remote_job.py).
Neither streams output while the run goes on: the result arrives when the run ends, and the service verifies
it exactly as a Slurm result (gateway.running.results.verified_result).
"""

from __future__ import annotations

import logging
import lzma
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from gateway.config.sites import KeepBundles, SiteConfig
from gateway.core.errors import BackendError
from gateway.core.states import JobState
from gateway.running.backends.base import JobHandle, JobRequest, JobStatus, PartitionLoad, script_context
from gateway.running.backends.fallback_config import FALLBACK_WORKDIR, GithubConfig, ModalConfig
from gateway.running.bundle import BundlePaths, bundle_archive, bundle_files
from gateway.running.jobscript import TemplateRenderer

log = logging.getLogger(__name__)
# the job's own time limit is this much below the backend's, so the wrapper still returns its output
RUN_MARGIN_S = 30


@dataclass(frozen=True)
class Outcome:
    """A fallback run's state; once terminal, with the raw result.json and the output's tail."""

    status: JobStatus
    result: bytes | None = None
    output: str = ""


@dataclass
class _Tracked:
    handle: JobHandle
    interval: float
    next_check: float = 0.0
    last: Outcome | None = None


class FallbackBackend:
    """The Backend interface for a service that runs a whole bundle and answers at the end. Subclasses
    implement _start, _poll, _cancel, _find and _load."""

    name = "fallback"

    def __init__(self, site: SiteConfig, config: ModalConfig | GithubConfig, renderer: TemplateRenderer):
        self.site = site
        self.config = config
        self._renderer = renderer
        self._tracked: dict[str, _Tracked] = {}
        self.polls = 0  # status calls made to the service (tests read it)

    # -- to implement ---------------------------------------------------------------------------------

    async def _start(self, request: JobRequest, archive: bytes) -> str:
        raise NotImplementedError

    async def _poll(self, handles: Sequence[JobHandle]) -> dict[str, Outcome]:
        """The outcome of each handle (by job id) that the service could tell; terminal ones complete."""
        raise NotImplementedError

    async def _cancel(self, handle: JobHandle) -> None:
        raise NotImplementedError

    async def _find(self, requests: Sequence[JobRequest]) -> dict[str, str]:
        """Job ids of runs already started for these requests, by run id."""
        raise NotImplementedError

    async def _load(self) -> dict[str, PartitionLoad]:
        raise NotImplementedError

    # -- the Backend interface ---------------------------------------------------------------------------

    def target(self, gpu_type: str | None) -> str:
        """What runs a GPU type there (a Modal function, a runner label), as the policy's ``gpus``."""
        for gpu, target in self.config.gpus.items():
            if gpu_type is not None and gpu.lower() == gpu_type.lower():
                return target
        raise BackendError(f"{self.site.name}: nothing runs GPU type {gpu_type!r} there")

    def time_limit_s(self) -> int:
        return self.config.timeout_s - RUN_MARGIN_S

    def archive(self, request: JobRequest) -> bytes:
        """The bundle as an xz-compressed tar of its folder ``<run id>/`` (xz: GitHub's dispatch carries at
        most 65,535 characters, and the harness travels in every bundle; xz's is an eighth smaller than
        gzip's)."""
        script = self._renderer.render(
            self._renderer.template_for(self.site.name, self.site.kind),
            script_context(request, BundlePaths(PurePosixPath(FALLBACK_WORKDIR)), self.site.python),
        )
        files = bundle_files(request.task, request.submission_code, request.spec, request.key_hex, script)
        return lzma.compress(bundle_archive(files, request.run_id), preset=9 | lzma.PRESET_EXTREME)

    def _handle(self, run_id: str, job_id: str) -> JobHandle:
        handle = JobHandle(run_id, job_id, BundlePaths.under(FALLBACK_WORKDIR, run_id))
        self._tracked[job_id] = _Tracked(handle, self.config.poll_min_s)
        return handle

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]:
        maybe = [r for r in requests if r.maybe_submitted]
        handles = await self.find(maybe) if maybe else {}
        for request in requests:
            if request.run_id not in handles:
                job_id = await self._start(request, self.archive(request))
                handles[request.run_id] = self._handle(request.run_id, job_id)
        return [handles[r.run_id] for r in requests]

    async def find(self, requests: Sequence[JobRequest]) -> dict[str, JobHandle]:
        if not requests:
            return {}
        found = await self._find(requests)
        return {run_id: self._handle(run_id, job_id) for run_id, job_id in found.items()}

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        """The monitor asks every fraction of a second; the service is asked only when a handle's
        backoff allows (poll_min_s after a change, growing to poll_max_s), and a run past its deadline
        (queue_timeout_s + timeout_s) is cancelled there and reported TIMEOUT."""
        now = time.monotonic()
        answers: dict[str, JobStatus] = {}
        due: list[_Tracked] = []
        for handle in handles:
            tracked = self._tracked.get(handle.job_id)
            if tracked is None:
                tracked = self._tracked[handle.job_id] = _Tracked(handle, self.config.poll_min_s)
            last = tracked.last
            if last is not None and last.status.state.is_terminal:
                answers[handle.job_id] = last.status
            elif time.time() - handle.submitted_at > self.config.queue_timeout_s + self.config.timeout_s:
                answers[handle.job_id] = await self._expire(tracked)
            elif last is not None and now < tracked.next_check:
                answers[handle.job_id] = last.status
            else:
                due.append(tracked)
        if due:
            self.polls += 1
            outcomes = await self._poll([t.handle for t in due])
            for tracked in due:
                outcome = outcomes.get(tracked.handle.job_id)
                if outcome is None:
                    answers[tracked.handle.job_id] = JobStatus(JobState.UNKNOWN)
                    continue
                changed = tracked.last is None or tracked.last.status != outcome.status
                tracked.interval = (
                    self.config.poll_min_s if changed else min(self.config.poll_max_s, tracked.interval * 2)
                )
                tracked.next_check, tracked.last = now + tracked.interval, outcome
                answers[tracked.handle.job_id] = outcome.status
        return answers

    async def _expire(self, tracked: _Tracked) -> JobStatus:
        limit = self.config.queue_timeout_s + self.config.timeout_s
        log.warning(
            "%s: run %s passed its %d s deadline: cancelling", self.site.name, tracked.handle.run_id, limit
        )
        await self._cancel(tracked.handle)
        status = JobStatus(
            JobState.TIMEOUT, f"not finished {limit} s after it was handed to {self.site.name}"
        )
        tracked.last = Outcome(status)
        return status

    async def cancel(self, handles: Sequence[JobHandle]) -> None:
        for handle in handles:
            await self._cancel(handle)

    async def load(self) -> dict[str, PartitionLoad]:
        return await self._load()

    def _final(self, handle: JobHandle) -> Outcome | None:
        tracked = self._tracked.get(handle.job_id)
        if tracked is None or tracked.last is None or not tracked.last.status.state.is_terminal:
            return None
        return tracked.last

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        final = self._final(handle)
        return final.result if final else None

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 64 * 1024) -> str:
        final = self._final(handle)
        return final.output[-max_bytes:] if final else ""

    async def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        """No live output: the run's output comes with its result (the service then keeps its tail)."""
        return
        yield  # an async generator that ends at once

    async def remove(self, run_ids: Sequence[str], keep: KeepBundles = "none") -> None:
        """Nothing to remove: the bundle was unpacked on the service's own machine (a Modal container, a
        GitHub-hosted runner), which is gone with the run; no work folder of ours outlives it. (What
        GitHub keeps of a workflow run, its dispatch inputs and its artifact, follows the repository's
        retention, not this call.)"""
        return None

    async def bundles(self) -> dict[str, float]:
        return {}  # no work folder of ours outlives a run there

    async def close(self) -> None:
        return None


def state_of_exit(value: dict[str, object], service: str) -> JobStatus:
    """The end of a job script run by remote_job.run_unpacked (or the workflow's equivalent)."""
    if value.get("timed_out"):
        return JobStatus(JobState.TIMEOUT, f"the job passed its time limit on {service}")
    code = value.get("exit_code")
    if code == 0:
        return JobStatus(JobState.COMPLETED)
    return JobStatus(JobState.FAILED, f"exit code {code}")
