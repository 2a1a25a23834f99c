"""Slurm over a transport: `sbatch --parsable` with the script on stdin, ONE squeue per round for every
tracked job, and a job that left squeue confirmed in sacct (never assumed done)."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from gateway.backends.base import MAX_RESULT_BYTES, JobHandle, JobRequest, JobStatus, script_context
from gateway.bundle import BundlePaths, stage_bundle
from gateway.errors import BackendError, CommandError
from gateway.render import TemplateRenderer
from gateway.sites import SiteConfig
from gateway.states import JobState, parse_slurm_state
from gateway.transport import Transport

log = logging.getLogger(__name__)
SBATCH_TIMEOUT_S = 30.0
QUERY_TIMEOUT_S = 30.0


def parse_sbatch_parsable(stdout: str) -> str:
    """`sbatch --parsable` prints `jobid` or `jobid;cluster`."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";", 1)[0]
    if not job_id.isdigit():
        raise BackendError(f"sbatch printed no job id: {stdout.strip()[:200]!r}")
    return job_id


def parse_squeue(stdout: str) -> dict[str, JobStatus]:
    """Lines of `squeue -h -o %i|%T|%r`."""
    states: dict[str, JobStatus] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            reason = parts[2] if parts[2] not in ("", "None", "(null)") else None
            states[parts[0]] = JobStatus(parse_slurm_state(parts[1]), reason)
    return states


def parse_sacct(stdout: str) -> dict[str, JobStatus]:
    """Lines of `sacct -X -n -P -o JobIDRaw,State,ExitCode`."""
    states: dict[str, JobStatus] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3:
            states[parts[0]] = JobStatus(parse_slurm_state(parts[1]), f"exit code {parts[2]}")
    return states


class SlurmBackend:
    name = "slurm"

    def __init__(self, site: SiteConfig, transport: Transport, renderer: TemplateRenderer) -> None:
        self._site = site
        self._transport = transport
        self._renderer = renderer
        self._terminal: dict[str, JobStatus] = {}  # terminal states never change: never ask again
        self.queries = 0  # squeue/sacct calls made (tests and benchmarks read it)

    @property
    def transport(self) -> Transport:
        return self._transport

    async def _workdir(self) -> PurePosixPath:
        workdir = PurePosixPath(self._site.workdir)
        if not workdir.is_absolute():
            workdir = PurePosixPath(await self._transport.home_dir()) / workdir
        return workdir

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]:
        if not requests:
            return []
        workdir = await self._workdir()
        await self._transport.run(["mkdir", "-p", "--", str(workdir)])
        return list(await asyncio.gather(*(self._submit_one(workdir, r) for r in requests)))

    async def _submit_one(self, workdir: PurePosixPath, request: JobRequest) -> JobHandle:
        paths = BundlePaths.under(workdir, request.run_id)
        script = self._renderer.render(
            self._renderer.template_for(self._site.name, "slurm"),
            script_context(request, paths, "python"),
        )
        with tempfile.TemporaryDirectory(prefix="gw-bundle-") as tmp:
            staging = Path(tmp) / request.run_id
            await asyncio.to_thread(
                stage_bundle,
                staging,
                request.task,
                request.submission_code,
                request.spec,
                request.key_hex,
                script,
            )
            await self._transport.upload_dir(staging, str(paths.root))
        try:
            done = await self._transport.run(["sbatch", "--parsable"], stdin=script, timeout=SBATCH_TIMEOUT_S)
        except CommandError as exc:
            raise BackendError(f"site {self._site.name}: sbatch refused run {request.run_id}: {exc}") from exc
        return JobHandle(request.run_id, parse_sbatch_parsable(done.stdout), paths)

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        result = {h.job_id: self._terminal[h.job_id] for h in handles if h.job_id in self._terminal}
        open_ids = sorted({h.job_id for h in handles} - result.keys(), key=int)
        if not open_ids:
            return result
        self.queries += 1
        done = await self._transport.run(
            ["squeue", "-h", "-t", "all", "-j", ",".join(open_ids), "-o", "%i|%T|%r"],
            timeout=QUERY_TIMEOUT_S,
            check=False,
        )
        # squeue exits 1 ("Invalid job id specified") when none of the ids is known any more
        seen = parse_squeue(done.stdout) if done.exit_code == 0 else {}
        result.update({job_id: seen[job_id] for job_id in open_ids if job_id in seen})
        missing = [job_id for job_id in open_ids if job_id not in seen]
        if missing:
            start = min(h.submitted_at for h in handles if h.job_id in missing) - 3600
            result.update(await self._sacct(missing, start))
        for job_id, status in result.items():
            if status.state.is_terminal:
                self._terminal[job_id] = status
        return result

    async def _sacct(self, job_ids: list[str], since: float) -> dict[str, JobStatus]:
        self.queries += 1
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since))
        done = await self._transport.run(
            [
                "sacct",
                "-X",
                "-n",
                "-P",
                "-j",
                ",".join(job_ids),
                "-S",
                start,
                "-o",
                "JobIDRaw,State,ExitCode",
            ],
            timeout=QUERY_TIMEOUT_S,
            check=False,
        )
        if done.exit_code != 0:
            log.warning("site %s: sacct failed: %s", self._site.name, done.stderr.strip()[:300])
            return {}
        found = parse_sacct(done.stdout)
        for job_id in job_ids:
            if job_id not in found:
                log.warning("site %s: job %s is in neither squeue nor sacct yet", self._site.name, job_id)
        return {job_id: found.get(job_id, JobStatus(JobState.UNKNOWN)) for job_id in job_ids}

    async def cancel(self, handles: Sequence[JobHandle]) -> None:
        if handles:
            await self._transport.run(["scancel", *[h.job_id for h in handles]], timeout=QUERY_TIMEOUT_S)

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        return await self._transport.read_file(str(handle.bundle.result), MAX_RESULT_BYTES)

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 64 * 1024) -> str:
        data = await self._transport.read_file(str(handle.bundle.output), max_bytes)
        return (data or b"").decode(errors="replace")

    async def close(self) -> None:
        await self._transport.close()
