"""Warm pools on a Slurm site (docs/warm-pools.md): the site's Slurm backend, plus pool jobs and the runs
handed to them.

A pool job runs the harness's pool runner in ``<workdir>/p-<hex>/``; a run goes to a pool in ONE command
(its bundle unpacked as for a job of its own, then its entry made in the pool's ``inbox/`` under a dot
name and renamed, so the runner never sees it half made). The runner moves the entry to ``taken/`` when it
starts the run and writes ``done/<run>`` (its start and end) after the run's result. A pool run's job id is
``<pool job id>:<pool id>``; its state comes from those folders and the pool job's own state, in one round
trip for every run followed. Nothing here touches the store: which pool a run gets is the service's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from gateway.config.cluster_info import format_time
from gateway.config.site_parts import PartitionConfig, WarmPoolConfig
from gateway.config.sites import KeepBundles
from gateway.core.errors import BackendError, CommandError
from gateway.core.states import JobState
from gateway.running.backends.base import (
    JOB_NAME_PREFIX,
    POOL_ID,
    JobHandle,
    JobRequest,
    JobStatus,
    PartitionLoad,
    PoolSlot,
    job_script_context,
)
from gateway.running.backends.slurm import QUERY_TIMEOUT_S, SBATCH_TIMEOUT_S, SUBMIT_SCRIPT, SlurmBackend
from gateway.running.backends.slurm_output import parse_sbatch_parsable
from gateway.running.bundle import BundlePaths, bundle_archive, bundle_files, pool_files
from gateway.running.jobscript import ScriptContext
from harness.protocol import POOL_ENDED, POOL_READY, PROGRESS_PREFIX

log = logging.getLogger(__name__)
POOL_READY_LINE = PROGRESS_PREFIX + POOL_READY
POOL_ENDED_LINE = PROGRESS_PREFIX + POOL_ENDED
# Unpack a run's bundle and put its entry in a pool's inbox. Arguments: work folder, run id, pool id.
HAND_OFF_SCRIPT = (
    'tar -xf - -C "$1" && : > "$1/$3/inbox/.$2.tmp" && exec mv -f -- "$1/$3/inbox/.$2.tmp" "$1/$3/inbox/$2"'
)
# A later attempt removes the old result first, as a job's resubmission does.
REHAND_OFF_SCRIPT = 'rm -f -- "$1/$2/result.json" && ' + HAND_OFF_SCRIPT
# Where each run is in its pool: a line `run|done`, `run|taken`, `run|inbox` or `run|none`.
# Arguments: work folder, then run id and pool id pairs.
MARKERS_SCRIPT = (
    'w=$1; shift; while [ $# -gt 1 ]; do r=$1; d="$w/$2"; shift 2; '
    'if [ -f "$d/done/$r" ]; then echo "$r|done"; elif [ -e "$d/taken/$r" ]; then echo "$r|taken"; '
    'elif [ -e "$d/inbox/$r" ]; then echo "$r|inbox"; else echo "$r|none"; fi; done'
)
# Take a run back from a pool's inbox (a rename: the runner either took it first or never will), else
# cancel the pool job that runs it. Arguments: work folder, scancel, then run id, pool id, job id triples.
CANCEL_SCRIPT = (
    'w=$1; s=$2; shift 2; while [ $# -gt 2 ]; do d="$w/$2"; '
    'mv -- "$d/inbox/$1" "$d/inbox/.$1.cancelled" 2>/dev/null || "$s" "$3"; shift 3; done'
)
# The pools among these whose runner said it is ready. Arguments: work folder, pool ids.
READY_SCRIPT = (
    'w=$1; shift; for p; do grep -qsF "' + POOL_READY_LINE + '" "$w/$p/output.log" && echo "$p"; done; exit 0'
)


def new_pool_id() -> str:
    return "p-" + secrets.token_hex(6)


def pool_job_name(pool_id: str) -> str:
    return JOB_NAME_PREFIX + pool_id


@dataclass(frozen=True)
class PoolPaths:
    root: PurePosixPath

    @classmethod
    def under(cls, workdir: str | PurePosixPath, pool_id: str) -> PoolPaths:
        if not POOL_ID.match(pool_id):
            raise ValueError(f"not a pool id: {pool_id!r}")
        return cls(PurePosixPath(workdir) / pool_id)

    @property
    def runner(self) -> PurePosixPath:
        return self.root / "harness" / "__main__.py"

    @property
    def output(self) -> PurePosixPath:
        return self.root / "output.log"

    def done(self, run_id: str) -> PurePosixPath:
        return self.root / "done" / run_id


@dataclass(frozen=True)
class PoolRunTimes:
    """When the pool runner started and ended a run (epoch seconds), from its ``done/<run>`` file."""

    started: float
    ended: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.started)


def parse_done(text: str) -> PoolRunTimes | None:
    try:
        data = json.loads(text)
        return PoolRunTimes(float(data["started"]), float(data["ended"]))
    except (ValueError, KeyError, TypeError):
        return None


def _marker_status(marker: str, pool: JobStatus | None, pool_job: str) -> JobStatus:
    if marker == "done":
        return JobStatus(JobState.COMPLETED)
    alive = pool is not None and pool.state in (JobState.RUNNING, JobState.PENDING, JobState.CONFIGURING)
    if not alive:
        ended = pool.state.value if pool is not None else "gone"
        return JobStatus(JobState.NODE_FAIL, f"its warm pool (job {pool_job}) ended: {ended}")
    if marker == "taken":
        return JobStatus(JobState.RUNNING)
    return JobStatus(JobState.PENDING, "WarmPool")


class WarmPoolBackend:
    """A Slurm site with warm pools: runs without a pool go to the Slurm backend as they always did."""

    name = "slurm"

    def __init__(self, slurm: SlurmBackend) -> None:
        self.slurm = slurm
        self.site = slurm.site

    # -- pool jobs --------------------------------------------------------------------------------------
    async def start_pool(self, pool_id: str, partition: PartitionConfig, gpus: int) -> str:
        """Submit a pool job for ``gpus`` GPUs of ``partition``: its Slurm job id."""
        pool = partition.warm_pool
        if pool is None:
            raise BackendError(f"site {self.site.name}: partition {partition.name} keeps no warm pool")
        workdir = await self._workdir()
        paths = PoolPaths.under(workdir, pool_id)
        script = self.slurm.render_context(_pool_context(self.slurm, pool_id, paths, partition, pool, gpus))
        # the job lives max_lifetime; its runner takes a run only while one more run's time limit fits
        taking_s = pool.max_lifetime_s - partition.time_limit_s
        spec = {"pool_id": pool_id, "idle_s": pool.idle_s, "max_lifetime_s": taking_s}
        archive = bundle_archive(pool_files(spec, script), pool_id)
        argv = ["sh", "-c", SUBMIT_SCRIPT, "gw-pool", str(workdir), pool_id, self.slurm.bin("sbatch")]
        try:
            done = await self.slurm.transport.run(argv, stdin=archive, timeout=SBATCH_TIMEOUT_S)
        except CommandError as exc:
            raise BackendError(f"site {self.site.name}: sbatch refused pool {pool_id}: {exc}") from exc
        return parse_sbatch_parsable(done.stdout)

    def pool_output(self, pool_id: str, workdir: PurePosixPath) -> AsyncGenerator[str, None]:
        """The pool job's own output as it is written (on the login agent's channel where it runs)."""
        return self.slurm.stream_file(str(PoolPaths.under(workdir, pool_id).output))

    async def ready_pools(self, pool_ids: Sequence[str]) -> set[str]:
        if not pool_ids:
            return set()
        workdir = await self._workdir()
        done = await self.slurm.transport.run(
            ["sh", "-c", READY_SCRIPT, "gw-ready", str(workdir), *pool_ids], timeout=QUERY_TIMEOUT_S
        )
        return {line.strip() for line in done.stdout.splitlines()} & set(pool_ids)

    async def pool_states(self, jobs: dict[str, str]) -> dict[str, JobStatus]:
        """The Slurm state of pool jobs (pool id -> job id), by pool id: one squeue (and sacct)."""
        if not jobs:
            return {}
        workdir = await self._workdir()
        handles = [
            JobHandle(pool, job, BundlePaths(PurePosixPath(workdir) / pool)) for pool, job in jobs.items()
        ]
        states = await self.slurm.status(handles)
        return {pool: states.get(job, JobStatus(JobState.UNKNOWN)) for pool, job in jobs.items()}

    async def remove_pools(self, pool_ids: Sequence[str]) -> None:
        workdir = await self._workdir()
        roots = [str(PoolPaths.under(workdir, pool).root) for pool in pool_ids]
        if roots:
            await self.slurm.transport.run(["rm", "-rf", "--", *roots], timeout=QUERY_TIMEOUT_S)

    async def cancel_pools(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            await self.slurm.transport.run([self.slurm.bin("scancel"), *job_ids], timeout=QUERY_TIMEOUT_S)

    async def run_times(self, handle: JobHandle) -> PoolRunTimes | None:
        """When the pool ran this run, from its ``done`` file; None for a run not run by a pool."""
        slot = PoolSlot.of_handle_id(handle.job_id)
        if slot is None:
            return None
        workdir = await self._workdir()
        data = await self.slurm.transport.read_file(
            str(PoolPaths.under(workdir, slot.pool_id).done(handle.run_id)), 4096
        )
        return parse_done(data.decode(errors="replace")) if data else None

    # -- the Backend interface --------------------------------------------------------------------------
    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]:
        cold = [r for r in requests if r.pool is None]
        handles = {h.run_id: h for h in await self.slurm.submit(cold)} if cold else {}
        pooled = [r for r in requests if r.pool is not None]
        for request, handle in zip(
            pooled, await asyncio.gather(*(self._hand_off(r) for r in pooled)), strict=True
        ):
            handles[request.run_id] = handle
        return [handles[r.run_id] for r in requests]

    async def _hand_off(self, request: JobRequest) -> JobHandle:
        slot = request.pool
        assert slot is not None
        workdir = await self._workdir()
        paths = BundlePaths.under(workdir, request.run_id)
        handle = JobHandle(request.run_id, slot.handle_id, paths)
        if request.maybe_submitted:  # a takeover: the pool may have it already
            markers = await self._markers([handle])
            if markers.get(request.run_id, "none") != "none":
                return handle
        script = f"#!/bin/sh\n# run {request.run_id} is handed to warm pool {slot.pool_id}\n"
        files = bundle_files(request.task, request.submission_code, request.spec, request.key_hex, script)
        archive = bundle_archive(files, request.run_id)
        shell = REHAND_OFF_SCRIPT if request.attempt > 1 or request.maybe_submitted else HAND_OFF_SCRIPT
        argv = ["sh", "-c", shell, "gw-hand-off", str(workdir), request.run_id, slot.pool_id]
        try:
            await self.slurm.transport.run(argv, stdin=archive, timeout=SBATCH_TIMEOUT_S)
        except CommandError as exc:
            raise BackendError(
                f"site {self.site.name}: run {request.run_id} could not be handed to pool {slot.pool_id}: "
                f"{exc.stderr.strip()[-300:]}"
            ) from exc
        return handle

    async def _markers(self, handles: Sequence[JobHandle]) -> dict[str, str]:
        """Each pool run's place in its pool (done, taken, inbox, none), by run id: one command."""
        if not handles:
            return {}
        workdir = await self._workdir()
        args: list[str] = []
        for handle in handles:
            slot = PoolSlot.of_handle_id(handle.job_id)
            assert slot is not None
            args += [handle.run_id, slot.pool_id]
        done = await self.slurm.transport.run(
            ["sh", "-c", MARKERS_SCRIPT, "gw-markers", str(workdir), *args], timeout=QUERY_TIMEOUT_S
        )
        return dict(line.split("|", 1) for line in done.stdout.splitlines() if "|" in line)

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        slots = {h.job_id: slot for h in handles if (slot := PoolSlot.of_handle_id(h.job_id)) is not None}
        pooled = [h for h in handles if h.job_id in slots]
        # each of these asks the site nothing when it has nothing to ask about
        cold_states, markers, pools = await asyncio.gather(
            self.slurm.status([h for h in handles if h.job_id not in slots]),
            self._markers(pooled),
            self.pool_states({slot.pool_id: slot.job_id for slot in slots.values()}),
        )
        result = dict(cold_states)
        for handle in pooled:
            slot = slots[handle.job_id]
            marker = markers.get(handle.run_id, "none")
            result[handle.job_id] = _marker_status(marker, pools.get(slot.pool_id), slot.job_id)
        return result

    async def cancel(self, handles: Sequence[JobHandle]) -> None:
        pooled = [(h, PoolSlot.of_handle_id(h.job_id)) for h in handles]
        args = [part for h, s in pooled if s is not None for part in (h.run_id, s.pool_id, s.job_id)]
        cold = [h for h, s in pooled if s is None]
        if cold:
            await self.slurm.cancel(cold)
        if args:
            workdir = await self._workdir()
            await self.slurm.transport.run(
                ["sh", "-c", CANCEL_SCRIPT, "gw-cancel", str(workdir), self.slurm.bin("scancel"), *args],
                timeout=QUERY_TIMEOUT_S,
            )

    async def find(self, requests: Sequence[JobRequest]) -> dict[str, JobHandle]:
        return await self.slurm.find([r for r in requests if r.pool is None])

    async def load(self) -> dict[str, PartitionLoad]:
        return await self.slurm.load()

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        return await self.slurm.fetch_result(handle)

    async def fetch_file(self, handle: JobHandle, name: str, max_bytes: int) -> bytes | None:
        return await self.slurm.fetch_file(handle, name, max_bytes)

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 64 * 1024) -> str:
        return await self.slurm.fetch_output(handle, max_bytes)

    def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        return self.slurm.stream_output(handle)

    async def remove(self, run_ids: Sequence[str], keep: KeepBundles = "none") -> None:
        await self.slurm.remove(run_ids, keep)

    async def bundles(self) -> dict[str, float]:
        return await self.slurm.bundles()

    async def close(self) -> None:
        await self.slurm.close()

    async def _workdir(self) -> PurePosixPath:
        return await self.slurm.prepared_workdir()


def _pool_context(
    slurm: SlurmBackend,
    pool_id: str,
    paths: PoolPaths,
    partition: PartitionConfig,
    pool: WarmPoolConfig,
    gpus: int,
) -> ScriptContext:
    """A pool job's script: a run's, but its time limit is the pool's lifetime, and its runner takes runs
    from its folder."""
    site = slurm.site
    context = job_script_context(
        site,
        partition,
        gpus,
        site.python,
        run_id=pool_id,
        job_name=pool_job_name(pool_id),
        root=str(paths.root),
        runner=str(paths.runner),
        output=str(paths.output),
    )
    return replace(context, time_limit=format_time(pool.max_lifetime_s), runner_verb="pool")
