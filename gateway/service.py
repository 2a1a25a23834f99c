"""The service: the one API the front ends (CLI, HTTP API, Discord bot) call.

It validates a submission, records it (when a database is configured), routes it to a site and
partition, hands the bundle to that site's backend, follows the job, verifies the harness's result,
and records timings and score. Backends never touch the store; this module does.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, cast, get_args

from gateway.backends.base import Backend, JobRequest, JobStatus
from gateway.backends.local import LocalBackend
from gateway.backends.slurm import SlurmBackend
from gateway.bundle import build_spec
from gateway.errors import BackendError, GatewayError, SubmissionError, TransportError, UserError
from gateway.execution import RunReport, SiteRuntime, execute
from gateway.monitor import Monitor
from gateway.render import TemplateRenderer
from gateway.routing import Choice, Router
from gateway.settings import Settings
from gateway.sites import LOCAL_SITE_NAME, SiteConfig, load_sites, local_site
from gateway.states import JobState
from gateway.store import LeaderboardRecord, NewRun, RankedEntry, RunRecord, Store, UnfinishedRun
from gateway.tasks import TaskDefinition
from gateway.transport import Transport
from gateway.transport.local import LocalTransport
from gateway.transport.ssh import SSHTransport

log = logging.getLogger(__name__)
Mode = Literal["test", "benchmark", "leaderboard"]
EventCallback = Callable[[str, str], Awaitable[None]]  # (run id, message)
LOCAL_GPU_LABEL = "local"

__all__ = ["Gateway", "LeaderboardView", "Mode", "RunReport", "SubmitRequest", "as_mode"]


def as_mode(value: str) -> Mode:
    """A mode name as the Mode literal; ValueError for anything else."""
    for mode in get_args(Mode):
        if value == mode:
            return cast(Mode, mode)
    raise ValueError(f"unknown mode {value!r}: expected one of {', '.join(get_args(Mode))}")


@dataclass(frozen=True)
class SubmitRequest:
    code: str
    file_name: str
    user: str
    task: TaskDefinition | None = None  # may be omitted when the leaderboard exists: its task is used
    leaderboard: str | None = None  # defaults to the task's name when a database is configured
    site: str | None = None  # None: routed among the sites offering gpu_type; the local site without one
    gpu_type: str | None = None
    mode: Mode = "leaderboard"


@dataclass(frozen=True)
class LeaderboardView:
    board: LeaderboardRecord
    ranking: list[RankedEntry]
    recent: list[RunRecord]


class Gateway:
    def __init__(
        self,
        settings: Settings,
        sites: dict[str, SiteConfig],
        store: Store | None,
        backend_factory: Callable[[SiteConfig], Backend] | None = None,
    ) -> None:
        self.settings = settings
        self._backend_factory = backend_factory or self._default_backend
        self.sites = sites
        self.store = store
        self.renderer = TemplateRenderer(settings.templates_dir)
        self._local = local_site(settings.local_workdir)
        self._runtimes: dict[str, SiteRuntime] = {}
        self.router = Router(lambda site: self._runtime(site).backend.load())

    @classmethod
    async def open(cls, settings: Settings, *, use_database: bool = True) -> Gateway:
        sites = load_sites(settings.sites_dir) if settings.sites_dir.is_dir() else {}
        dsn = settings.database_dsn() if use_database else None
        store = await Store.connect(dsn) if dsn else None
        return cls(settings, sites, store)

    async def close(self) -> None:
        for runtime in self._runtimes.values():
            await runtime.monitor.close()
            await runtime.backend.close()
        self._runtimes.clear()
        if self.store is not None:
            await self.store.close()

    def site(self, name: str | None) -> SiteConfig:
        if name is None or name == LOCAL_SITE_NAME:
            return self._local
        if name not in self.sites:
            known = ", ".join(sorted([LOCAL_SITE_NAME, *self.sites]))
            raise UserError(f"unknown site {name!r}; known sites: {known}")
        return self.sites[name]

    def _default_backend(self, site: SiteConfig) -> Backend:
        if site.kind == "local":
            return LocalBackend(self.settings.local_workdir, self.renderer)
        transport: Transport
        if site.submit_via == "ssh":
            assert site.login is not None  # the site model guarantees it
            transport = SSHTransport(site.name, site.login)
        else:
            if site.submit_via == "pyslurm":
                # pyslurm is tied to the Slurm major version; the CLI is always right, so it serves
                # every call here (see docs/architecture.md, "Submission paths")
                log.info("site %s: submitting with the local Slurm commands", site.name)
            transport = LocalTransport()
        return SlurmBackend(site, transport, self.renderer)

    def _runtime(self, site: SiteConfig) -> SiteRuntime:
        """One backend (so one SSH connection) and one monitor per site, made on first use."""
        runtime = self._runtimes.get(site.name)
        if runtime is None:
            backend = self._backend_factory(site)
            # one query per round whatever the number of jobs: a local process is cheap to ask about; a
            # Slurm site gets one squeue every 0.2 s after a change, backing off to one a second (each
            # costs the controller about 4 ms), and none while it has no job of ours. Results are pushed
            # over the output stream, so this is the safety net, not the fast path.
            interval = (0.05, 0.5) if site.kind == "local" else (0.2, 1.0)
            monitor = Monitor(backend, min_interval_s=interval[0], max_interval_s=interval[1])
            runtime = self._runtimes[site.name] = SiteRuntime(backend, monitor)
        return runtime

    def backend_for(self, site_name: str | None) -> Backend:
        """The backend serving a site (made on first use); one per site, so one SSH connection."""
        return self._runtime(self.site(site_name)).backend

    async def route(self, site_name: str | None, gpu_type: str | None) -> Choice:
        """Where a job runs: the named site (its best partition for the GPU type), else the best of every
        site offering the GPU type, else (no site, no GPU type) the built-in local site."""
        if site_name is None and gpu_type is None:
            return Choice(self._local, self._local.partitions[0], "no site or GPU type given")
        if site_name is not None:
            site = self.site(site_name)
            if site.kind == "local":
                return Choice(site, site.partitions[0], "the local site")
            if gpu_type is None:
                gpu_type = site.partitions[0].gpu_type
            if gpu_type is None or not site.partitions_for(gpu_type):
                offered = ", ".join(site.gpu_types()) or "none"
                raise UserError(
                    f"site {site.name} has no partition with GPU type {gpu_type!r}; it offers: {offered}"
                )
            return await self.router.choose(gpu_type, [site])
        assert gpu_type is not None
        sites = [s for s in self.sites.values() if s.partitions_for(gpu_type)]
        if not sites:
            offered = ", ".join(self.known_gpu_types())
            raise UserError(f"no site offers GPU type {gpu_type!r}; offered: {offered}")
        return await self.router.choose(gpu_type, sites)

    def known_gpu_types(self) -> list[str]:
        return sorted({gpu for site in self.sites.values() for gpu in site.gpu_types()} | {LOCAL_GPU_LABEL})

    # -- leaderboards -------------------------------------------------------------------------------

    def _require_store(self) -> Store:
        if self.store is None:
            raise UserError("no database is configured: set GATEWAY_DATABASE_URL (see `gateway dev env`)")
        return self.store

    async def create_leaderboard(
        self, name: str, task: TaskDefinition, gpu_types: list[str] | None = None
    ) -> LeaderboardRecord:
        store = self._require_store()
        return await store.create_leaderboard(
            name, task.description, task.model_dump(), task.ranking_by, gpu_types or self.known_gpu_types()
        )

    async def leaderboard(self, name: str, recent: int = 20) -> LeaderboardView:
        store = self._require_store()
        board = await store.get_leaderboard(name)
        if board is None:
            raise UserError(f"no leaderboard named {name!r}")
        return LeaderboardView(
            board, await store.ranking(board.id), await store.recent_runs(board.id, recent)
        )

    # -- submissions --------------------------------------------------------------------------------

    def _check_code(self, code: str, file_name: str) -> None:
        if not file_name or len(file_name) > 255 or "/" in file_name or not file_name.isprintable():
            raise SubmissionError(
                f"the file name {file_name!r} cannot be used: one line of printable characters without "
                "'/', at most 255"
            )
        size = len(code.encode())
        if size == 0 or not code.strip():
            raise SubmissionError(f"{file_name} is empty")
        if size > self.settings.max_submission_bytes:
            raise SubmissionError(
                f"{file_name} is {size} bytes; the limit is {self.settings.max_submission_bytes} bytes"
            )
        if "\x00" in code:
            raise SubmissionError(f"{file_name} contains NUL bytes: submit Python source text")

    async def _resolve_task(self, request: SubmitRequest) -> tuple[TaskDefinition, LeaderboardRecord | None]:
        if self.store is None:
            if request.task is None:
                raise UserError("give --task: there is no database to look the leaderboard up in")
            return request.task, None
        name = request.leaderboard or (request.task.name if request.task else None)
        if name is None:
            raise UserError("give --task or --leaderboard")
        board = await self.store.get_leaderboard(name)
        if board is None:
            if request.task is None:
                raise UserError(f"no leaderboard named {name!r}; give --task to create it")
            board = await self.create_leaderboard(name, request.task)
        task = TaskDefinition.from_json(board.task)
        return task, board

    async def submit(self, request: SubmitRequest, on_event: EventCallback | None = None) -> RunReport:
        """Run one submission to its end and return what happened (failures are reported, not raised,
        once the run exists; bad input raises UserError before anything is stored)."""
        self._check_code(request.code, request.file_name)
        task, board = await self._resolve_task(request)
        choice = await self.route(request.site, request.gpu_type)
        site, partition = choice.site, choice.partition
        gpu_type = partition.gpu_type or LOCAL_GPU_LABEL
        if board is not None and board.gpu_types and gpu_type not in board.gpu_types:
            raise UserError(
                f"leaderboard {board.name} does not rank {gpu_type}; it ranks {', '.join(board.gpu_types)}"
            )
        run_id = str(uuid.uuid4())
        key_hex = secrets.token_hex(32)
        report = RunReport(
            run_id,
            request.user,
            request.file_name,
            site.name,
            partition.name,
            gpu_type,
            leaderboard=board.name if board else None,
        )
        if self.store is not None:
            user_id = await self.store.ensure_user(request.user)
            await self.store.create_submission(
                user_id,
                board.id if board else None,
                task.name,
                request.file_name,
                request.code,
                [
                    NewRun(
                        run_id,
                        request.mode,
                        gpu_type,
                        site.name,
                        partition.name,
                        site.kind,
                        JobState.QUEUED.value,
                        key_hex,
                    )
                ],
            )
        job = JobRequest(
            run_id, site, partition, task, request.code, build_spec(run_id, request.mode, task), key_hex
        )
        where = f"{site.name}/{partition.name} ({gpu_type})"
        return await self._execute(job, report, on_event, f"queued for {where}: {choice.why}")

    async def resume(
        self,
        on_event: EventCallback | None = None,
        site: str | None = None,
        run_ids: list[str] | None = None,
    ) -> list[RunReport]:
        """Finish every run a stopped gateway left unfinished: follow its Slurm job when it has one
        (found by id, or by its job name when the gateway stopped before recording the id), and submit
        it only when the site has no job for it. Nothing runs twice and every run is recorded once."""
        store = self._require_store()
        try:
            pending = await store.unfinished_runs(site, run_ids)
        except ValueError as exc:  # a run id that is not a UUID
            raise UserError(f"not a run id: {exc}") from exc
        return list(await asyncio.gather(*(self._resume_one(run, on_event) for run in pending)))

    async def _resume_one(self, run: UnfinishedRun, on_event: EventCallback | None) -> RunReport:
        report = RunReport(
            run.run_id,
            run.user_name,
            run.file_name,
            run.site,
            run.partition or "",
            run.gpu_type or LOCAL_GPU_LABEL,
            job_id=run.job_id,
            attempt=run.attempt,
            leaderboard=run.leaderboard,
        )
        try:
            site = self.site(run.site)
            partition = site.partition(run.partition or "") or site.partitions[0]
            if run.task is None:
                raise UserError("its task is not stored (an ad-hoc run without a leaderboard)")
            task = TaskDefinition.from_json(run.task)
        except GatewayError as exc:
            report.state, report.error = JobState.FAILED, f"cannot resume: {exc}"
            await self._record(report)
            return report
        job = JobRequest(
            run.run_id,
            site,
            partition,
            task,
            run.code,
            build_spec(run.run_id, as_mode(run.mode), task),
            run.result_key,
            attempt=run.attempt,
            maybe_submitted=True,
        )
        # maybe_submitted: the backend finds the job by its name (whether or not its id was recorded)
        # and submits only when the site has none
        last = f" (last seen as job {run.job_id})" if run.job_id else ""
        return await self._execute(job, report, on_event, f"resuming on {site.name}{last}")

    async def _execute(
        self,
        job: JobRequest,
        report: RunReport,
        on_event: EventCallback | None,
        first_event: str,
    ) -> RunReport:
        site, partition = job.site, job.partition

        async def event(message: str) -> None:
            report.events.append(message)
            if on_event is not None:
                await on_event(job.run_id, message)

        async def persist(report: RunReport, status: JobStatus | None) -> None:
            if self.store is None:
                return
            if status is None and report.job_id is not None:
                await self.store.mark_submitted(
                    report.run_id, report.job_id, report.state.value, report.attempt
                )
            elif status is not None:
                await self.store.update_state(
                    report.run_id, status.state.value, started=status.state is JobState.RUNNING
                )

        await event(first_event)
        self.router.started(site.name, partition.name)
        try:
            await execute(self._runtime(site), job, report, event, persist)
            self.router.record(site.name, None)
        except asyncio.CancelledError:
            # the caller gave up (Ctrl-C, a closed API request): cancel the job and say so in the row
            await asyncio.shield(self._abandon(report, site))
            raise
        except GatewayError as exc:
            if isinstance(exc, TransportError | BackendError):
                self.router.record(site.name, str(exc))
            report.error = report.error or str(exc)
            if not report.state.is_terminal:
                report.state = JobState.FAILED
            log.warning("run %s failed: %s", job.run_id, exc)
        finally:
            self.router.finished(site.name, partition.name)
        await self._record(report)
        await event("passed" if report.passed else f"failed: {report.error}")
        return report

    async def _record(self, report: RunReport) -> None:
        if self.store is None:
            return
        result = report.result
        await self.store.record_result(
            report.run_id,
            state=report.state.value,
            passed=report.passed,
            score=report.score,
            result=result.to_payload() if result else None,
            system_info=result.system if result else None,
            error=report.error,
        )

    async def _abandon(self, report: RunReport, site: SiteConfig) -> None:
        report.state, report.error = JobState.CANCELLED, "cancelled: the submitter stopped waiting"
        try:
            if report.handle is not None:
                await self._runtime(site).backend.cancel([report.handle])
        except GatewayError as exc:
            log.warning("run %s: could not cancel job %s: %s", report.run_id, report.job_id, exc)
        await self._record(report)
