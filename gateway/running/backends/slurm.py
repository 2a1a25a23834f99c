"""Slurm over a transport: the login agent (login_agent.py) unpacks the bundle and runs `sbatch --parsable`
in one round trip on its open channel (one shell command where it cannot run) and follows every run's
output on that one channel; ONE squeue per round for every tracked job; a job that left squeue is confirmed
in sacct (never assumed done); a run that may already have been submitted is looked up by its job name
before it is submitted again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import PurePosixPath

from gateway.config.sites import KeepBundles, SiteConfig
from gateway.core.errors import BackendError, CommandError, TransportError
from gateway.core.states import JobState
from gateway.running.backends.base import (
    MAX_RESULT_BYTES,
    JobHandle,
    JobRequest,
    JobStatus,
    PartitionLoad,
    script_context,
)
from gateway.running.backends.login_agent import LoginAgent
from gateway.running.backends.slurm_output import (
    parse_bundle_list,
    parse_load,
    parse_named_jobs,
    parse_sacct,
    parse_sbatch_parsable,
    parse_squeue,
)
from gateway.running.bundle import LOG_NAMES, BundlePaths, bundle_archive, bundle_files
from gateway.running.jobscript import ScriptContext, TemplateRenderer
from gateway.running.transport import ProcessTransport, Transport

log = logging.getLogger(__name__)
SBATCH_TIMEOUT_S = 30.0
QUERY_TIMEOUT_S = 30.0
# How far back sacct looks for a run submitted before a restart (sacct without -S only looks to midnight).
LOOKBACK_S = 7 * 24 * 3600
# Where the login agent cannot run: unpack the bundle into the work folder and submit it in ONE command:
# one channel, one round trip, and no process on the login node beyond sh, tar and sbatch. The tar
# holds the run's folder with its modes and an empty output.log. A later attempt of a run first removes
# the old result, so it is not mistaken for the new one. Arguments: work folder, run id, sbatch to use.
SUBMIT_SCRIPT = 'tar -xf - -C "$1" && exec "$3" --parsable "$1/$2/job.sh"'
RESUBMIT_SCRIPT = 'rm -f -- "$1/$2/result.json" && ' + SUBMIT_SCRIPT
# Remove runs' bundles but their logs (keep_bundles: logs), in ONE command: each argument is a bundle folder
# derived by BundlePaths; the names kept are constants. A folder that is not there is skipped.
KEEP_LOGS_SCRIPT = (
    'status=0; for d in "$@"; do [ -d "$d" ] || continue; find "$d" -mindepth 1 -maxdepth 1 '
    + " ".join(f"! -name {name}" for name in LOG_NAMES)
    + " -exec rm -rf -- {} + || status=1; done; exit $status"
)
# The folders in the work folder with their last change (epoch seconds), one `name|mtime` a line; nothing
# when the work folder does not exist yet. Argument: the work folder.
LIST_SCRIPT = '[ -d "$1" ] || exit 0; exec find "$1" -mindepth 1 -maxdepth 1 -type d -printf "%f|%T@\\n"'
# Bundles removed per command (a sweep may find thousands: stay far below the login node's ARG_MAX).
REMOVE_BATCH = 500
# Where the login agent cannot run, follow a job's output from its first line with a channel of its own;
# bounded, so a stream whose channel is dropped without a signal cannot outlive the job by more than a day.
TAIL_BOUND = "86400"


class SlurmBackend:
    name = "slurm"

    def __init__(self, site: SiteConfig, transport: Transport, renderer: TemplateRenderer) -> None:
        self._site = site
        self._transport = transport
        self._renderer = renderer
        self._terminal: dict[str, JobStatus] = {}  # terminal states never change: never ask again
        self._workdir_path: PurePosixPath | None = None
        self._workdir_made = False
        # one agent per connection follows every run's output and submits; a fake transport has none
        self.agent = LoginAgent(transport, site.name) if isinstance(transport, ProcessTransport) else None
        self.queries = 0  # squeue/sacct calls made (tests and benchmarks read it)

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def site(self) -> SiteConfig:
        return self._site

    def _bin(self, command: str) -> str:
        return self._site.slurm.argv0(command)

    async def workdir(self) -> PurePosixPath:
        if self._workdir_path is None:
            workdir = PurePosixPath(self._site.workdir)
            if not workdir.is_absolute():
                workdir = PurePosixPath(await self._transport.home_dir()) / workdir
            self._workdir_path = workdir
        return self._workdir_path

    def render(self, request: JobRequest, paths: BundlePaths) -> str:
        return self._renderer.render(
            self._renderer.template_for(self._site.name, "slurm"),
            script_context(request, paths, self._site.python),
        )

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]:
        if not requests:
            return []
        workdir = await self.workdir()
        if not self._workdir_made:
            await self._transport.run(["mkdir", "-p", "--", str(workdir)], timeout=QUERY_TIMEOUT_S)
            self._workdir_made = True
        maybe = [r for r in requests if r.maybe_submitted]
        handles = await self.find(maybe) if maybe else {}
        for handle in handles.values():
            log.info("site %s: run %s is already job %s", self._site.name, handle.run_id, handle.job_id)
        new = [r for r in requests if r.run_id not in handles]
        for request, handle in zip(
            new, await asyncio.gather(*(self._submit_one(workdir, r) for r in new)), strict=True
        ):
            handles[request.run_id] = handle
        return [handles[r.run_id] for r in requests]

    async def _submit_one(self, workdir: PurePosixPath, request: JobRequest) -> JobHandle:
        paths = BundlePaths.under(workdir, request.run_id)
        script = self.render(request, paths)
        files = bundle_files(request.task, request.submission_code, request.spec, request.key_hex, script)
        again = request.attempt > 1 or request.maybe_submitted  # rare: by the shell, removing the old result
        shell = RESUBMIT_SCRIPT if again else SUBMIT_SCRIPT
        argv = ["sh", "-c", shell, "gw-submit", str(workdir), request.run_id, self._bin("sbatch")]
        try:
            if not again and self.agent is not None and await self.agent.ready():
                # the files as they are over the agent's open channel: no tar to build or unpack
                done = await self.agent.submit(
                    str(workdir), request.run_id, self._bin("sbatch"), files, SBATCH_TIMEOUT_S
                )
                done.check()
            else:
                archive = bundle_archive(files, request.run_id)  # ~0.5 ms: not worth a thread
                done = await self._transport.run(argv, stdin=archive, timeout=SBATCH_TIMEOUT_S)
        except (TransportError, CommandError) as exc:
            if isinstance(exc, CommandError) and not exc.timed_out:
                why = exc.stderr.strip()[-500:]
                raise BackendError(
                    f"site {self._site.name}: sbatch refused run {request.run_id}: {why}"
                ) from exc
            # the connection broke or sbatch timed out: it may have submitted all the same, so look the
            # job up by name before trying again (the cause of duplicates in other gateways)
            log.warning(
                "site %s: submit of run %s interrupted (%s); looking it up",
                self._site.name,
                request.run_id,
                exc,
            )
            found = await self.find([request])
            if request.run_id in found:
                return found[request.run_id]
            argv[2] = RESUBMIT_SCRIPT  # the first try may have unpacked its folder already
            archive = bundle_archive(files, request.run_id)
            done = await self._transport.run(argv, stdin=archive, timeout=SBATCH_TIMEOUT_S)
        return JobHandle(request.run_id, parse_sbatch_parsable(done.stdout), paths)

    async def find(self, requests: Sequence[JobRequest]) -> dict[str, JobHandle]:
        """One squeue (and, for names it does not know, one sacct) for all requests' job names."""
        if not requests:
            return {}
        by_name = {r.job_name: r for r in requests}
        names = ",".join(sorted(by_name))
        self.queries += 1
        done = await self._transport.run(
            [self._bin("squeue"), "-h", "-t", "all", "--name", names, "-o", "%i|%j|%T"],
            timeout=QUERY_TIMEOUT_S,
            check=False,
        )
        found = parse_named_jobs(done.stdout) if done.exit_code == 0 else {}
        missing = [name for name in by_name if name not in found]
        if missing:
            self.queries += 1
            since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - LOOKBACK_S))
            done = await self._transport.run(
                [
                    self._bin("sacct"),
                    "-X",
                    "-n",
                    "-P",
                    "--name",
                    ",".join(sorted(missing)),
                    "-S",
                    since,
                    "-o",
                    "JobIDRaw,JobName,State",
                ],
                timeout=QUERY_TIMEOUT_S,
                check=False,
            )
            if done.exit_code != 0:
                # without accounting we cannot prove the job is absent: refuse rather than risk a duplicate
                raise BackendError(f"site {self._site.name}: sacct failed: {done.stderr.strip()[:300]}")
            found.update(parse_named_jobs(done.stdout))
        workdir = await self.workdir()
        handles = {}
        for name, jobs in found.items():
            request = by_name.get(name)
            if request is None:
                continue
            if len(jobs) > 1:
                log.warning(
                    "site %s: %d jobs are named %s: following the newest", self._site.name, len(jobs), name
                )
            handles[request.run_id] = JobHandle(
                request.run_id, jobs[-1][0], BundlePaths.under(workdir, request.run_id)
            )
        return handles

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        result = {h.job_id: self._terminal[h.job_id] for h in handles if h.job_id in self._terminal}
        open_ids = sorted({h.job_id for h in handles} - result.keys(), key=int)
        if not open_ids:
            return result
        self.queries += 1
        # %S of a pending job is the start the scheduler expects (the same as `squeue --start` shows), so
        # the estimate comes with the state in this one query; SLURM_TIME_FORMAT=%s makes it epoch seconds
        # whatever the login node's time zone
        done = await self._transport.run(
            [
                "env",
                "SLURM_TIME_FORMAT=%s",
                self._bin("squeue"),
                "-h",
                "-t",
                "all",
                "-j",
                ",".join(open_ids),
                "-o",
                "%i|%T|%r|%S",
            ],
            timeout=QUERY_TIMEOUT_S,
            check=False,
        )
        # squeue exits 1 ("Invalid job id specified") when none of the ids is known any more
        seen = parse_squeue(done.stdout) if done.exit_code == 0 else {}
        result.update({job_id: seen[job_id] for job_id in open_ids if job_id in seen})
        missing = [job_id for job_id in open_ids if job_id not in seen]
        if missing:
            gone = set(missing)  # a set: a round may find hundreds gone at once
            start = min(h.submitted_at for h in handles if h.job_id in gone) - 3600
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
                self._bin("sacct"),
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

    async def load(self) -> dict[str, PartitionLoad]:
        names = [p.name for p in self._site.partitions]
        joined = ",".join(names)
        sinfo, squeue = await asyncio.gather(
            self._transport.run(
                [self._bin("sinfo"), "-h", "-p", joined, "-o", "%R|%a|%t"], timeout=QUERY_TIMEOUT_S
            ),
            self._transport.run(
                [self._bin("squeue"), "-h", "-p", joined, "-t", "PENDING,RUNNING", "-o", "%P|%T"],
                timeout=QUERY_TIMEOUT_S,
            ),
        )
        return parse_load(sinfo.stdout, squeue.stdout, names)

    async def cancel(self, handles: Sequence[JobHandle]) -> None:
        if handles:
            await self._transport.run(
                [self._bin("scancel"), *[h.job_id for h in handles]], timeout=QUERY_TIMEOUT_S
            )

    async def remove(self, run_ids: Sequence[str], keep: KeepBundles = "none") -> None:
        """`rm -rf -- <bundle folders>` (keep="logs": all but the logs), one command for many bundles;
        the paths come from BundlePaths alone (a run id is one safe path component)."""
        workdir = await self.workdir()
        roots = [str(BundlePaths.under(workdir, run_id).root) for run_id in run_ids]
        for start in range(0, len(roots), REMOVE_BATCH):
            batch = roots[start : start + REMOVE_BATCH]
            if keep == "none":
                argv = ["rm", "-rf", "--", *batch]
            else:
                argv = ["sh", "-c", KEEP_LOGS_SCRIPT, "gw-remove", *batch]
            await self._transport.run(argv, timeout=QUERY_TIMEOUT_S)

    async def bundles(self) -> dict[str, float]:
        workdir = await self.workdir()
        done = await self._transport.run(
            ["sh", "-c", LIST_SCRIPT, "gw-list", str(workdir)], timeout=QUERY_TIMEOUT_S
        )
        return parse_bundle_list(done.stdout)

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        return await self._transport.read_file(str(handle.bundle.result), MAX_RESULT_BYTES)

    async def fetch_file(self, handle: JobHandle, name: str, max_bytes: int) -> bytes | None:
        return await self._transport.read_file(str(handle.bundle.root / name), max_bytes)

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 64 * 1024) -> str:
        data = await self._transport.read_file(str(handle.bundle.output), max_bytes)
        return (data or b"").decode(errors="replace")

    def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        return self.stream_file(str(handle.bundle.output))

    async def stream_file(self, path: str) -> AsyncGenerator[str, None]:
        """The lines of a file on the site from its start, as they are written, until closed: on the login
        agent's one channel, or where it cannot run on a `tail -F` channel of its own."""
        if self.agent is not None and await self.agent.ready():
            lines = self.agent.follow(path)  # the one channel that follows every run
        else:
            lines = self._transport.stream_lines(
                ["timeout", TAIL_BOUND, "tail", "-n", "+1", "-s", "0.2", "-F", "--", path]
            )
        async with contextlib.aclosing(lines):
            async for line in lines:
                yield line

    async def close(self) -> None:
        if self.agent is not None:
            await self.agent.close()
        await self._transport.close()

    # -- for the warm pools' backend (warm_pool.py), which runs its own commands over this site's ---------
    def bin(self, command: str) -> str:
        return self._bin(command)

    def render_context(self, context: ScriptContext) -> str:
        return self._renderer.render(self._renderer.template_for(self._site.name, "slurm"), context)

    async def prepared_workdir(self) -> PurePosixPath:
        """The work folder, made on the site once per connection."""
        workdir = await self.workdir()
        if not self._workdir_made:
            await self._transport.run(["mkdir", "-p", "--", str(workdir)], timeout=QUERY_TIMEOUT_S)
            self._workdir_made = True
        return workdir
