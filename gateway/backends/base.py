"""The small, list-oriented backend interface every backend implements (submit, status, cancel, fetch)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.bundle import BundlePaths
from gateway.render import ScriptContext
from gateway.sites import PartitionConfig, SiteConfig
from gateway.states import JobState
from gateway.tasks import TaskDefinition

MAX_RESULT_BYTES = 4 * 1024 * 1024
JOB_NAME_PREFIX = "gw-"


def job_name(run_id: str) -> str:
    """The Slurm job name: it carries the run id, so a run can always be found on its cluster."""
    return JOB_NAME_PREFIX + run_id


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


def script_context(request: JobRequest, paths: BundlePaths, python: str) -> ScriptContext:
    part = request.partition
    return ScriptContext(
        run_id=request.run_id,
        job_name=job_name(request.run_id),
        bundle_dir=str(paths.root),
        output_file=str(paths.output),
        python=python,
        partition=part.name if request.site.kind == "slurm" else None,
        gres=part.gres,
        time_limit=part.time_limit,
        cpus_per_task=part.cpus_per_gpu,
        mem=part.mem_per_gpu,
        setup=tuple(request.site.setup),
    )


class Backend(Protocol):
    name: str

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]: ...

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        """The state of every handle, keyed by job id, from ONE query to the site."""
        ...

    async def cancel(self, handles: Sequence[JobHandle]) -> None: ...

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        """The raw result.json the harness wrote, or None when there is none."""
        ...

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 64 * 1024) -> str: ...

    async def close(self) -> None: ...
