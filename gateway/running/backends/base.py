"""The small, list-oriented backend interface every backend implements.

submit, status, cancel, find and remove take lists (one query to the site for all of them); fetch_result,
fetch_output and stream_output serve one job. Backends never touch the store.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gateway.config.site_parts import PartitionConfig
from gateway.config.sites import KeepBundles, SiteConfig
from gateway.config.tasks import TaskDefinition
from gateway.core.states import JobState
from gateway.running.bundle import BundlePaths
from gateway.running.jobscript import ScriptContext
from harness.protocol import PROGRESS_PREFIX

MAX_RESULT_BYTES = 4 * 1024 * 1024
JOB_NAME_PREFIX = "gw-"
# The runner's last progress line: result.json is complete once it is printed (see harness.runner).
RESULT_WRITTEN_MARKER = PROGRESS_PREFIX + "result written"
POOL_ID = re.compile(r"^p-[0-9a-f]{12}$")  # a warm pool's folder in the workdir (docs/warm-pools.md)


def job_name(run_id: str, attempt: int = 1) -> str:
    """The Slurm job name: it carries the run id (and the attempt after a requeue), so a run can always
    be found on its cluster, by ``squeue --name`` or ``sacct --name``."""
    return JOB_NAME_PREFIX + run_id + (f"-{attempt}" if attempt > 1 else "")


@dataclass(frozen=True)
class PoolSlot:
    """A ready pool a run is handed to: its folder's name and its Slurm job."""

    pool_id: str
    job_id: str

    @property
    def handle_id(self) -> str:
        return f"{self.job_id}:{self.pool_id}"

    @classmethod
    def of_handle_id(cls, handle_id: str) -> PoolSlot | None:
        job_id, _, pool_id = handle_id.partition(":")
        return cls(pool_id, job_id) if job_id.isdigit() and POOL_ID.match(pool_id) else None


@dataclass(frozen=True)
class JobRequest:
    """One run to start: the task, the submission, its spec.json and the key that signs its result."""

    run_id: str
    site: SiteConfig
    partition: PartitionConfig
    task: TaskDefinition
    submission_code: str
    spec: dict[str, Any]
    key_hex: str
    attempt: int = 1
    # True when this run may already have been handed to the site (a restart, a lost connection): the
    # backend looks for its job by name before submitting, so the site never runs it twice
    maybe_submitted: bool = False
    pool: PoolSlot | None = None  # a warm pool's: the run is handed to it, not submitted as a job

    @property
    def job_name(self) -> str:
        return job_name(self.run_id, self.attempt)


@dataclass
class JobHandle:
    run_id: str
    job_id: str
    bundle: BundlePaths
    submitted_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    reason: str | None = None  # Slurm's pending reason (Priority, Resources, ...) or exit code
    start_at: float | None = None  # a pending job's start as Slurm expects it (epoch seconds), if known


@dataclass(frozen=True)
class PartitionLoad:
    """What routing needs to know of a partition, from one sinfo and one squeue per site."""

    name: str
    available: bool  # the partition is up and has at least one node that can take jobs
    pending: int  # jobs of anyone waiting in it
    running: int  # jobs of anyone running in it
    state: str = ""  # Slurm's words, for people


def script_context(request: JobRequest, paths: BundlePaths, python: str) -> ScriptContext:
    return job_script_context(
        request.site,
        request.partition,
        request.task.gpus_per_run,
        python,
        run_id=request.run_id,
        job_name=request.job_name,
        root=str(paths.root),
        runner=str(paths.runner),
        output=str(paths.output),
    )


def job_script_context(
    site: SiteConfig,
    part: PartitionConfig,
    gpus: int,
    python: str,
    *,
    run_id: str,
    job_name: str,
    root: str,
    runner: str,
    output: str,
) -> ScriptContext:
    """A job's script in ``part`` of ``site``, for ``gpus`` GPUs: a run's (above), or a warm pool's."""
    slurm = site.kind == "slurm"
    # a multi-GPU task's job asks for its GPUs (and CPUs and memory per GPU) on one node
    wanted = part.job_resources(gpus)
    return ScriptContext(
        run_id=run_id,
        job_name=job_name,
        bundle_dir=root,
        runner=runner,
        output_file=output,
        python=python,
        partition=part.name if slurm else None,
        gres=wanted.gres,
        time_limit=part.time_limit,
        cpus_per_task=wanted.cpus,
        mem=wanted.mem,
        account=site.account if slurm else None,
        qos=site.qos if slurm else None,
        directives=tuple(part.directives) if slurm else (),
        setup=tuple(site.setup),
        container=site.container,
        isolation_args=site.isolation.runner_args(),
    )


@runtime_checkable
class BundleFiles(Protocol):
    """A backend whose jobs leave their files in a bundle folder it can read (slurm, local): profile mode's
    Nsight Compute report is fetched from there."""

    async def fetch_file(self, handle: JobHandle, name: str, max_bytes: int) -> bytes | None:
        """Up to ``max_bytes`` of file ``name`` in the job's bundle folder; None when it is not there."""
        ...


class Backend(Protocol):
    name: str

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]: ...

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        """The state of every handle, keyed by job id, from ONE query to the site."""
        ...

    async def cancel(self, handles: Sequence[JobHandle]) -> None: ...

    async def find(self, requests: Sequence[JobRequest]) -> dict[str, JobHandle]:
        """Jobs already on the site for these requests (by job name), keyed by run id."""
        ...

    async def load(self) -> dict[str, PartitionLoad]:
        """The state and queue depth of this site's partitions, by partition name."""
        ...

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        """The raw result.json the harness wrote, or None when there is none."""
        ...

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 64 * 1024) -> str: ...

    def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        """The job's output lines as they are written (from the start of the file), until closed."""
        ...

    async def remove(self, run_ids: Sequence[str], keep: KeepBundles = "none") -> None:
        """Remove these runs' bundles from the site, all in ONE command: the whole folder, or with
        keep="logs" everything but output.log and result.json. A bundle that is not there is no error.
        Called once a run has ended and is recorded: nothing is read from its bundle afterwards."""
        ...

    async def bundles(self) -> dict[str, float]:
        """The run folders in the site's workdir (named as run ids), with the time of their last change
        (epoch seconds): what a sweep for leftovers looks at."""
        ...

    async def close(self) -> None: ...
