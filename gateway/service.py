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
from dataclasses import dataclass, field
from typing import Literal

from gateway.backends.base import Backend, JobHandle, JobRequest, JobStatus
from gateway.backends.local import LocalBackend
from gateway.backends.slurm import SlurmBackend
from gateway.bundle import build_spec
from gateway.errors import GatewayError, ResultError, SubmissionError, UserError
from gateway.monitor import Monitor
from gateway.render import TemplateRenderer
from gateway.results import verified_result
from gateway.settings import Settings
from gateway.sites import LOCAL_SITE_NAME, PartitionConfig, SiteConfig, load_sites, local_site
from gateway.states import TERMINAL_MESSAGES, JobState
from gateway.store import LeaderboardRecord, NewRun, RankedEntry, RunRecord, Store
from gateway.tasks import TaskDefinition
from gateway.transport.ssh import SSHTransport
from harness.protocol import RunResult

log = logging.getLogger(__name__)
Mode = Literal["test", "benchmark", "leaderboard"]
EventCallback = Callable[[str, str], Awaitable[None]]  # (run id, message)
LOCAL_GPU_LABEL = "local"


@dataclass(frozen=True)
class SubmitRequest:
    code: str
    file_name: str
    user: str
    task: TaskDefinition | None = None  # may be omitted when the leaderboard exists: its task is used
    leaderboard: str | None = None  # defaults to the task's name when a database is configured
    site: str | None = None  # None: the built-in local site
    gpu_type: str | None = None
    mode: Mode = "leaderboard"


@dataclass
class RunReport:
    run_id: str
    user: str
    file_name: str
    site: str
    partition: str
    gpu_type: str
    job_id: str | None = None
    state: JobState = JobState.QUEUED
    result: RunResult | None = None
    score: float | None = None
    error: str | None = None
    output_tail: str = ""
    leaderboard: str | None = None
    events: list[str] = field(default_factory=list)
    handle: JobHandle | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.error is None and self.result is not None and self.result.passed


@dataclass(frozen=True)
class LeaderboardView:
    board: LeaderboardRecord
    ranking: list[RankedEntry]
    recent: list[RunRecord]


class _SiteRuntime:
    def __init__(self, backend: Backend, monitor: Monitor) -> None:
        self.backend = backend
        self.monitor = monitor


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
        self._runtimes: dict[str, _SiteRuntime] = {}

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
        assert site.login is not None  # load_site guarantees it
        return SlurmBackend(site, SSHTransport(site.name, site.login), self.renderer)

    def _runtime(self, site: SiteConfig) -> _SiteRuntime:
        """One backend (so one SSH connection) and one monitor per site, made on first use."""
        runtime = self._runtimes.get(site.name)
        if runtime is None:
            backend = self._backend_factory(site)
            # one query per round whatever the number of jobs: a local process is cheap to ask about; a
            # Slurm site gets one squeue every 0.2 s after a change, backing off to one a second (each
            # costs the controller about 4 ms), and none while it has no job of ours
            interval = (0.05, 0.5) if site.kind == "local" else (0.2, 1.0)
            monitor = Monitor(backend, min_interval_s=interval[0], max_interval_s=interval[1])
            runtime = self._runtimes[site.name] = _SiteRuntime(backend, monitor)
        return runtime

    def backend_for(self, site_name: str | None) -> Backend:
        """The backend serving a site (made on first use); one per site, so one SSH connection."""
        return self._runtime(self.site(site_name)).backend

    def route(self, site_name: str | None, gpu_type: str | None) -> tuple[SiteConfig, PartitionConfig]:
        site = self.site(site_name)
        if site.kind == "local":
            return site, site.partitions[0]
        partition = site.partition_for(gpu_type)
        if partition is None:
            offered = ", ".join(site.gpu_types()) or "none"
            raise UserError(
                f"site {site.name} has no partition with GPU type {gpu_type!r}; it offers: {offered}"
            )
        return site, partition

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
        site, partition = self.route(request.site, request.gpu_type)
        task, board = await self._resolve_task(request)
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

        async def event(message: str) -> None:
            report.events.append(message)
            if on_event is not None:
                await on_event(run_id, message)

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
        await event(f"queued for {site.name}/{partition.name} ({gpu_type})")
        try:
            await self._run(report, site, partition, task, request, key_hex, event)
        except asyncio.CancelledError:
            # the caller gave up (Ctrl-C, a closed API request): cancel the job and say so in the row
            await asyncio.shield(self._abandon(report, site))
            raise
        except GatewayError as exc:
            report.error = report.error or str(exc)
            if report.state is JobState.QUEUED or not report.state.is_terminal:
                report.state = JobState.FAILED
            log.warning("run %s failed: %s", run_id, exc)
        if self.store is not None:
            result = report.result
            await self.store.record_result(
                run_id,
                state=report.state.value,
                passed=report.passed,
                score=report.score,
                result=result.to_payload() if result else None,
                system_info=result.system if result else None,
                error=report.error,
            )
        await event("passed" if report.passed else f"failed: {report.error}")
        return report

    async def _abandon(self, report: RunReport, site: SiteConfig) -> None:
        report.state, report.error = JobState.CANCELLED, "cancelled: the submitter stopped waiting"
        try:
            if report.handle is not None:
                await self._runtime(site).backend.cancel([report.handle])
        except GatewayError as exc:
            log.warning("run %s: could not cancel job %s: %s", report.run_id, report.job_id, exc)
        if self.store is not None:
            await self.store.record_result(
                report.run_id,
                state=report.state.value,
                passed=False,
                score=None,
                result=None,
                system_info=None,
                error=report.error,
            )

    async def _run(
        self,
        report: RunReport,
        site: SiteConfig,
        partition: PartitionConfig,
        task: TaskDefinition,
        request: SubmitRequest,
        key_hex: str,
        event: Callable[[str], Awaitable[None]],
    ) -> None:
        runtime = self._runtime(site)
        job = JobRequest(
            report.run_id,
            site,
            partition,
            task,
            request.code,
            build_spec(report.run_id, request.mode, task),
            key_hex,
        )
        handle = (await runtime.backend.submit([job]))[0]
        report.handle, report.job_id, report.state = handle, handle.job_id, JobState.PENDING
        if self.store is not None:
            await self.store.mark_submitted(report.run_id, handle.job_id, JobState.PENDING.value)
        await event(f"submitted as job {handle.job_id}")

        async def on_change(_handle: JobHandle, status: JobStatus) -> None:
            report.state = status.state
            reason = f" ({status.reason})" if status.reason and not status.state.is_terminal else ""
            await event(f"{status.state.value}{reason}")
            if self.store is not None and not status.state.is_terminal:
                await self.store.update_state(
                    report.run_id, status.state.value, started=status.state is JobState.RUNNING
                )

        final = await runtime.monitor.wait(handle, on_change)
        report.state = final.state
        report.output_tail = (await runtime.backend.fetch_output(handle))[-4000:]
        raw = await runtime.backend.fetch_result(handle)
        if raw is None and final.state is not JobState.COMPLETED:
            report.error = TERMINAL_MESSAGES.get(final.state, f"the job ended {final.state.value}")
            return
        try:
            result = verified_result(raw, key_hex, report.run_id)
        except ResultError as exc:
            report.error = str(exc)
            return
        report.result = result
        report.score = result.score(task.ranking_by)
        if not result.passed:
            report.error = result.failure_message or "the submission failed"
