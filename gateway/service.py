"""The service: the one API the front ends (CLI, HTTP API, Discord bot) call.

``enqueue`` validates a submission and stores it with its runs (a public run, and for leaderboard mode
a secret rerun, per GPU type) in one transaction. Workers (gateway.worker) claim runs and call
``process``: route to a site and partition, hand the bundle to that site's backend, follow the job,
verify the harness's result, record timings and score. ``follow`` streams any run's events from
PostgreSQL (LISTEN/NOTIFY). Backends never touch the store; this module does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.accounts import Accounts
from gateway.authority import ANONYMOUS, FORBIDDEN, OPERATOR, Caller, require_admin
from gateway.backends.base import Backend, JobRequest
from gateway.backends.local import LocalBackend
from gateway.backends.slurm import SlurmBackend
from gateway.bundle import build_spec
from gateway.errors import (
    NotFoundError,
    RefusedError,
    UserError,
)
from gateway.execution import RunReport, SiteRuntime
from gateway.isolation import IsolationGate, Verifier
from gateway.leaderboards import LeaderboardAdmin, LeaderboardView
from gateway.limits import SharedLimits
from gateway.modes import Mode, as_mode
from gateway.monitor import Monitor
from gateway.policy import RoutingPolicy, choose_route, load_policy, make_fallback_backend, policy_path
from gateway.processing import (
    LOCAL_GPU_LABEL,
    Claim,
    EventCallback,
    RunProcessing,
    report_of,
    routed_event,
)
from gateway.render import TemplateRenderer
from gateway.routing import Choice, Router
from gateway.settings import Settings
from gateway.sites import FALLBACK_KINDS, LOCAL_SITE_NAME, SiteConfig, load_sites, local_site
from gateway.store import (
    EVENTS_CHANNEL,
    GatewayStats,
    IsolationCheck,
    LeaderboardRecord,
    LeaderboardSummary,
    NewRun,
    RankedEntry,
    RateLimit,
    RunEvent,
    RunRecord,
    ScorePoint,
    SiteHealth,
    SiteStats,
    Standing,
    Store,
    UserRecord,
)
from gateway.suggest import GPU_CUTOFF, did_you_mean
from gateway.tasks import TaskDefinition
from gateway.transport import Transport
from gateway.transport.local import LocalTransport
from gateway.transport.ssh import SSHTransport
from gateway.validation import (
    BIGINT_MAX,
    FULL_RUN_ID,
    MAX_REASON_CHARS,
    RUN_ID_PREFIX,
    check_account,
    check_code,
    check_name,
    check_source,
    check_text,
    public_submission_key,
    shown,
)

log = logging.getLogger(__name__)

__all__ = [  # with the store's typed rows that this API returns, so front ends never import the store
    "ANONYMOUS",
    "LOCAL_GPU_LABEL",
    "OPERATOR",
    "Caller",
    "Claim",
    "EventCallback",
    "Gateway",
    "GatewayStats",
    "IsolationCheck",
    "LeaderboardRecord",
    "LeaderboardSummary",
    "LeaderboardView",
    "Mode",
    "QueuedRun",
    "RankedEntry",
    "RateLimit",
    "RunEvent",
    "RunRecord",
    "RunReport",
    "ScorePoint",
    "SiteHealth",
    "SiteStats",
    "Standing",
    "Submission",
    "SubmitRequest",
    "UserRecord",
    "as_mode",
    "report_of",
]


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
    # the submitter holds an admin's rights, as its front end established (gateway.authority): naming a
    # site, a hidden leaderboard, making a leaderboard from a task
    admin: bool = False

    @property
    def caller(self) -> Caller:
        return Caller(self.user, self.admin)

    @property
    def on_this_machine(self) -> bool:
        """Whether it runs on the gateway's own machine (the built-in local site)."""
        return self.site in (None, LOCAL_SITE_NAME) and self.gpu_type in (None, LOCAL_GPU_LABEL)


@dataclass(frozen=True)
class QueuedRun:
    run_id: str
    gpu_type: str
    secret: bool


@dataclass(frozen=True)
class Submission:
    """A stored submission and its queued runs (what ``enqueue`` returns at once)."""

    id: int
    leaderboard: str | None
    runs: list[QueuedRun]
    public_id: str = ""  # what users see and ask for (ids are not guessable from one another)

    @property
    def run_ids(self) -> list[str]:
        return [run.run_id for run in self.runs]

    @property
    def public_run(self) -> QueuedRun:
        return next(run for run in self.runs if not run.secret)


class Gateway(RunProcessing, LeaderboardAdmin, Accounts, SharedLimits):
    def __init__(
        self,
        settings: Settings,
        sites: dict[str, SiteConfig],
        store: Store | None,
        backend_factory: Callable[[SiteConfig], Backend] | None = None,
        policy: RoutingPolicy | None = None,
        verify_isolation: Verifier | None = None,
    ) -> None:
        self.settings = settings
        # fallback backends (Modal, GitHub Actions) are sites of their own kind, made from the policy
        self.policy = policy or RoutingPolicy()
        self.fallbacks = self.policy.fallback_sites()
        self._backend_factory = backend_factory or self._default_backend
        self.sites = sites
        self.store = store
        self.renderer = TemplateRenderer(settings.templates_dir)
        self._local = local_site(
            settings.local_workdir, settings.local_isolation, settings.local_keep_bundles
        )
        self._runtimes: dict[str, SiteRuntime] = {}
        self.router = Router(lambda site: self._runtime(site).backend.load())
        self._health: tuple[float, dict[str, SiteHealth]] = (0.0, {})
        self._discovery = asyncio.Lock()
        # which runs a site may take by how it confines submitted code; verify_isolation runs the probe
        self.isolation = IsolationGate(store, verify_isolation)

    @classmethod
    async def open(cls, settings: Settings, *, use_database: bool = True) -> Gateway:
        sites = load_sites(settings.sites_dir) if settings.sites_dir.is_dir() else {}
        dsn = settings.database_dsn() if use_database else None
        policy = load_policy(policy_path(settings), list(sites))
        store = await Store.connect(dsn) if dsn else None
        # the probe submits through a Gateway of its own: imported here, where no cycle can form
        from gateway.sitecheck.isolation import verify_isolation

        verifier = functools.partial(verify_isolation, settings)
        return cls(settings, sites, store, policy=policy, verify_isolation=verifier)

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
        if name in self.fallbacks:
            return self.fallbacks[name]
        if name not in self.sites:
            known = sorted([LOCAL_SITE_NAME, *self.sites, *self.fallbacks])
            raise UserError(
                f"unknown site {shown(name)}{did_you_mean(name, known)}; known sites: {', '.join(known)}"
            )
        return self.sites[name]

    def _default_backend(self, site: SiteConfig) -> Backend:
        if site.kind == "local":
            return LocalBackend(self.settings.local_workdir, self.renderer)
        if site.kind in FALLBACK_KINDS:
            return make_fallback_backend(self.policy, site, self.settings, self.renderer)
        transport: Transport
        if site.submit_via == "ssh":
            assert site.login is not None  # the site model guarantees it
            transport = SSHTransport(site.name, site.login)
        else:
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

    async def route(
        self, site_name: str | None, gpu_type: str | None, leaderboard: str | None = None, *, mode: str
    ) -> Choice:
        """Where a job runs: the named site (its best partition for the GPU type), else as the routing
        policy says for the leaderboard and GPU type (gateway/policy.py: preferred sites, then
        fallbacks), else (no site, no GPU type) the built-in local site. A site takes only the modes its
        isolation allows (gateway/isolation.py): leaderboard runs only where it is verified."""
        if site_name is None and gpu_type is None:
            await self._admit(self._local, mode)
            return Choice(self._local, self._local.partitions[0], "no site or GPU type given")
        if site_name is not None:
            if site_name not in (LOCAL_SITE_NAME, *self.sites, *self.fallbacks):
                # the discovered cluster by the name its routing line showed (a typo stays unknown)
                with contextlib.suppress(UserError):
                    await self._zero_config(gpu_type)
            site = self.site(site_name)
            await self._admit(site, mode)
            if site.kind == "local":
                return Choice(site, site.partitions[0], "the local site")
            gpu_type = self._gpu_on(site, gpu_type)
            drained = (await self._drained()).get(site.name)
            if drained is not None:
                raise UserError(
                    f"site {site.name} is drained by an admin ({drained.drain_reason or 'no reason'})"
                )
            return await self.router.choose(gpu_type, [site])
        assert gpu_type is not None
        await self._zero_config(gpu_type)
        sites = [s for s in self.sites.values() if s.partitions_for(gpu_type)]
        rule = self.policy.rule_for(leaderboard, gpu_type)
        offered = {gpu.lower() for gpu in self.known_gpu_types()}
        if (not sites and not (rule and rule.fallbacks)) or gpu_type.lower() not in offered:
            raise self._unknown_gpu(gpu_type)
        drained_sites = await self._drained()
        open_sites = [s for s in sites if s.name not in drained_sites]
        if sites and not open_sites and not (rule and rule.fallbacks):
            raise UserError(f"every site offering {gpu_type} is drained by an admin: try again later")
        refusals = {s.name: await self.isolation.refusal(s, mode) for s in open_sites}
        admitted = [s for s in open_sites if refusals[s.name] is None]
        fallbacks = {n: f for n, f in self.fallbacks.items() if n not in drained_sites}
        try:
            return await choose_route(self.router, self.policy, gpu_type, admitted, fallbacks, leaderboard)
        except UserError as exc:
            refused = "; ".join(r for r in refusals.values() if r is not None)
            if refused:
                raise UserError(f"{exc}; {refused}") from exc
            raise

    async def _zero_config(self, gpu_type: str | None) -> None:
        """Nothing configured (no site, no fallback, no database) and sbatch on the PATH: this is a login
        node, so a GPU run goes to its own cluster, read from Slurm (gateway/discovery.py) as a site like
        any other, not to this machine. Ad-hoc runs only: a run recorded in a database may be taken over
        or cleaned up by another process, which must find its site in the site files."""
        from gateway.discovery import discover, sbatch_on_path

        async with self._discovery:  # one discovery however many runs route at once
            if self.store is not None or self.sites or self.fallbacks or not sbatch_on_path():
                return
            found = await discover(self.settings.local_isolation)
            if gpu_type is not None:
                found.check_offers(gpu_type)
            log.info("no site configured: submitting to cluster %s through the local sbatch", found.cluster)
            self.sites = {found.site.name: found.site}

    async def _admit(self, site: SiteConfig, mode: str) -> None:
        refusal = await self.isolation.refusal(site, mode)
        if refusal is not None:
            raise UserError(refusal)

    @staticmethod
    def _gpu_on(site: SiteConfig, gpu_type: str | None) -> str:
        """The GPU type a run gets on a Slurm site (its first partition's when none is asked for)."""
        gpu = gpu_type or site.partitions[0].gpu_type
        if gpu is None or not site.partitions_for(gpu):
            offered = site.gpu_types()
            hint = did_you_mean(gpu, offered, GPU_CUTOFF) if gpu else ""
            raise UserError(
                f"site {site.name} has no partition with GPU type {shown(gpu or 'none')}{hint}; "
                f"it offers: {', '.join(offered) or 'none'}"
            )
        return gpu

    def _unknown_gpu(self, gpu_type: str) -> UserError:
        """No site offers ``gpu_type``: say which types each site offers (and a close one, if any), and,
        on a machine with Slurm and no site, how to make one of it."""
        from gateway.discovery import sbatch_on_path

        known = self.known_gpu_types()
        by_site = [
            f"{site.name}: {', '.join(site.gpu_types()) or 'none'}"
            for site in [*self.sites.values(), *self.fallbacks.values()]
        ]
        where = f" ({'; '.join(by_site)})" if by_site else ""
        hint = ""
        if not self.sites and sbatch_on_path():
            hint = (
                "; this machine has Slurm: `gateway sites init` writes its cluster as a site file (a run "
                "goes to it unasked only with no database and no fallback configured)"
            )
        return UserError(
            f"no site offers GPU type {shown(gpu_type)}{did_you_mean(gpu_type, known, GPU_CUTOFF)}; "
            f"offered: {', '.join(known)}{where}{hint}"
        )

    async def _drained(self) -> dict[str, SiteHealth]:
        """Sites an admin drained (read from the store at most every few seconds)."""
        if self.store is None:
            return {}
        at, health = self._health
        if time.monotonic() - at > 5.0:
            health = await self.store.site_health()
            self._health = (time.monotonic(), health)
        return {name: h for name, h in health.items() if h.drained}

    def known_gpu_types(self) -> list[str]:
        sites = [*self.sites.values(), *self.fallbacks.values()]
        return sorted({gpu for site in sites for gpu in site.gpu_types()} | {LOCAL_GPU_LABEL})

    def _require_store(self) -> Store:
        if self.store is None:
            raise UserError("no database is configured: set GATEWAY_DATABASE_URL (see `gateway dev env`)")
        return self.store

    # -- submissions --------------------------------------------------------------------------------

    def _check_request(self, request: SubmitRequest) -> None:
        """Names and code as the store can keep them verbatim, or a UserError saying what is wrong; and
        the one authority check of a submission: naming a site (the local one included) is an admin's."""
        check_account(request.user)
        if request.leaderboard is not None:
            check_name("leaderboard name", request.leaderboard)
        check_code(request.code, request.file_name, self.settings.max_submission_bytes)
        if request.task is not None:  # before a leaderboard is made of it; else once its board is found
            check_source(request.code, request.file_name, request.task.lang)
        if request.site is not None:
            require_admin(
                request.caller,
                "naming a site is for the gateway's admins: leave the site out, and the gateway routes "
                "the run to a site with the GPU type",
            )
        if request.gpu_type == LOCAL_GPU_LABEL or request.on_this_machine:
            require_admin(
                request.caller,
                "runs on the gateway's own machine are for its admins: give a GPU type the leaderboard ranks",
            )

    @staticmethod
    def _check_source_for(request: SubmitRequest, task: TaskDefinition) -> None:
        """The code against the task it runs as (the leaderboard's, where the request named none): the
        file name and the syntax of the task's language, so that a file that cannot run is refused with
        its own name and line before anything is stored, queued or counted against a rate limit."""
        if request.task is None or request.task.lang != task.lang:  # else _check_request checked it
            check_source(request.code, request.file_name, task.lang)

    async def _resolve_task(self, request: SubmitRequest) -> tuple[TaskDefinition, LeaderboardRecord | None]:
        if self.store is None:
            if request.task is None:
                raise UserError("give --task: there is no database to look the leaderboard up in")
            return request.task, None
        name = request.leaderboard or (request.task.name if request.task else None)
        if name is None:
            raise UserError("give --task or --leaderboard")
        try:
            board = await self.get_leaderboard(name, caller=request.caller)  # hidden: not found to users
        except NotFoundError as missing:
            visible = [board.name for board in await self.leaderboards(caller=request.caller)]
            hint = did_you_mean(name, visible)
            if not request.admin:
                raise NotFoundError(f"{missing}{hint}") from None
            if request.task is None:
                raise NotFoundError(f"{missing}{hint}; give --task to create it") from None
            board = await self.create_leaderboard(
                name, request.task, creator=request.user, caller=request.caller
            )
        return TaskDefinition.from_json(board.task), board

    def _gpu_type(self, request: SubmitRequest, board: LeaderboardRecord | None) -> str:
        """The GPU type a request runs on, checked against the sites and the leaderboard (no routing yet:
        the worker that claims the run picks the site and partition)."""
        if request.site is not None:
            site = self.site(request.site)
            if site.kind == "local":
                gpu = request.gpu_type or site.partitions[0].gpu_type or LOCAL_GPU_LABEL
            else:
                gpu = self._gpu_on(site, request.gpu_type)
        elif request.gpu_type is None:
            gpu = LOCAL_GPU_LABEL
        else:
            gpu = request.gpu_type
            if gpu not in self.known_gpu_types():
                raise self._unknown_gpu(gpu)
        if board is not None and gpu not in board.gpu_types:
            ranks = ", ".join(board.gpu_types) or "no GPU type (an admin gives it some)"
            hint = did_you_mean(gpu, board.gpu_types, GPU_CUTOFF)
            raise UserError(f"leaderboard {board.name} does not rank {shown(gpu)}{hint}; it ranks {ranks}")
        return gpu

    async def enqueue(self, request: SubmitRequest) -> Submission:
        """Check and store a submission with its queued runs; returns at once. Workers run it.

        A leaderboard-mode submission gets a public run and a secret rerun (the leaderboard's secret seed);
        it ranks only when both pass. Bad input raises UserError and stores nothing."""
        store = self._require_store()
        self._check_request(request)
        if request.site is not None and (drained := (await self._drained()).get(request.site)):
            raise RefusedError(
                f"site {request.site} is drained by an admin ({drained.drain_reason or 'no reason given'}): "
                "submit without --site, or later",
                "drained",
            )
        task, board = await self._resolve_task(request)
        self._check_source_for(request, task)
        gpu = self._gpu_type(request, board)
        secret_too = request.mode == "leaderboard" and board is not None
        runs = [
            NewRun(str(uuid.uuid4()), request.mode, gpu, secrets.token_hex(32), secret, request.site)
            for secret in ([False, True] if secret_too else [False])
        ]
        public_id = secrets.token_hex(16)
        submission_id = await store.create_submission(
            request.user,
            board.id if board else None,
            task.name,
            request.file_name,
            request.code,
            request.mode,
            runs,
            public_id=public_id,
            max_unfinished=self.settings.max_unfinished_runs_per_user or None,
            per_minute=self.settings.submissions_per_minute or None,
        )
        return Submission(
            submission_id,
            board.name if board else None,
            [QueuedRun(r.run_id, gpu, r.secret) for r in runs],
            public_id,
        )

    async def submit(self, request: SubmitRequest, on_event: EventCallback | None = None) -> RunReport:
        """Enqueue a submission and see it through in this process (as a worker for its own runs; a
        worker elsewhere may take some, and they are followed); return the public run's report with the
        secret rerun's verdict. Without a database the run goes straight to its site."""
        if self.store is None or (request.admin and request.on_this_machine and request.leaderboard is None):
            # a run on this machine is never a leaderboard's ('local' is no board's GPU type): it is not
            # recorded (one naming a leaderboard is refused by enqueue, saying what the board ranks)
            return await self._run_direct(request, on_event)
        from gateway.worker import Worker  # the worker drives this service: imported late, not circularly

        submission = await self.enqueue(request)
        reports = await Worker(self).drain(submission.run_ids, on_event)
        public = reports[submission.public_run.run_id]
        secret = [reports[r.run_id] for r in submission.runs if r.secret]
        if secret:
            public.secret_passed = secret[0].passed
        return public

    async def resume(
        self, on_event: EventCallback | None = None, site: str | None = None, run_ids: list[str] | None = None
    ) -> list[RunReport]:
        """See unfinished runs through in this process: those no live worker holds are claimed (a run a
        stopped worker held is taken over once its claim is stale), the others are followed."""
        from gateway.worker import Worker

        store = self._require_store()
        if run_ids:
            wanted = [(await self.run(run_id, caller=OPERATOR)) for run_id in run_ids]
        else:
            wanted = await store.list_runs(unfinished=True, site=site, limit=10_000)
        pending = [r.run_id for r in wanted if r.finished_at is None and (site is None or r.site == site)]
        reports = await Worker(self).drain(pending, on_event)
        return [reports[run_id] for run_id in pending if run_id in reports]

    async def _run_direct(self, request: SubmitRequest, on_event: EventCallback | None) -> RunReport:
        self._check_request(request)
        task = request.task if request.task is not None else (await self._resolve_task(request))[0]
        self._check_source_for(request, task)
        choice = await self.route(request.site, request.gpu_type, request.leaderboard, mode=request.mode)
        run_id = str(uuid.uuid4())
        report = RunReport(
            run_id,
            request.user,
            request.file_name,
            choice.site.name,
            choice.partition.name,
            choice.partition.gpu_type or LOCAL_GPU_LABEL,
        )
        job = JobRequest(
            run_id,
            choice.site,
            choice.partition,
            task,
            request.code,
            build_spec(run_id, request.mode, task, ncu=choice.site.profile.ncu, file_name=request.file_name),
            secrets.token_hex(32),
        )
        first = routed_event(
            choice.site.name, choice.partition.name, report.gpu_type, choice.site.kind, choice.why
        )
        return await self._execute(job, report, on_event, first, None)

    # -- following and managing runs ----------------------------------------------------------------

    async def follow(self, run_ids: list[str], after_id: int = 0) -> AsyncIterator[RunEvent]:
        """Each event of these runs as it happens (from PostgreSQL's LISTEN/NOTIFY), until all finished."""
        async for event in self._require_store().follow(run_ids, after_id):
            yield event

    def event_notifications(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[tuple[str, str]]]:
        """LISTEN for run events, for a process that fans them out to many followers (the HTTP API):
        a queue of (channel, JSON payload naming the run, kind and state); ("", "") when the connection
        dropped, after which followers must re-read what they follow with ``events_after``."""
        return self._require_store().notifications(EVENTS_CHANNEL)

    async def events_after(self, run_ids: list[str], after_id: int = 0) -> list[RunEvent]:
        """The recorded events of these runs (full ids) after event ``after_id``, oldest first."""
        if after_id >= BIGINT_MAX:
            return []  # no event id is past bigint's last
        return await self._require_store().events(run_ids, after_id)

    async def submission_runs(self, submission: str | int, *, caller: Caller) -> list[RunRecord]:
        """A submission's runs, the public run(s) first, then the secret rerun: by its public id, or (for
        admins) its number. Anything else, or a hidden board's to a non-admin, is 'not found'."""
        key = public_submission_key(submission, caller.admin)
        runs = await self._require_store().submission_runs(key) if key is not None else []
        if not runs or (runs[0].hidden and not caller.admin):
            raise NotFoundError(f"no submission {shown(str(submission))}")
        return runs

    async def own_submissions(
        self, account: str, *, before: str | None = None, limit: int = 20, caller: Caller
    ) -> list[list[RunRecord]]:
        """An account's submissions, newest first, each as its runs (the public one first); older than
        their submission ``before`` (its public id). Only the account itself (or an admin) may list them;
        a hidden board's are listed to admins only, as everywhere."""
        if not caller.may_act_for(account):
            raise RefusedError("you can list only your own submissions", FORBIDDEN)
        if not 1 <= limit <= 200:
            raise UserError(f"a page of {limit} submissions: give 1 to 200")
        cursor = None if before is None else public_submission_key(before, False)
        if before is not None and cursor is None:
            raise UserError(f"{shown(before)} is not a submission id: pass the next_before of a page")
        return await self._require_store().user_submissions(
            account, before=None if cursor is None else str(cursor), limit=limit, hidden=caller.admin
        )

    async def queue_position(self, run_id: str) -> int | None:
        """A queued run's place in line for a worker (1: next); None once a worker has it."""
        return await self._require_store().queue_position(run_id)

    async def ncu_report(self, run_id: str, *, caller: Caller) -> tuple[RunRecord, bytes]:
        """A profile run's Nsight Compute report, to whoever may read the run (``run``'s rules); a secret
        rerun's never (it shows only its verdict). NotFoundError says why there is none."""
        record = await self.run(run_id, caller=caller)
        data = None if record.secret else await self._require_store().ncu_report(record.run_id)
        if data is None:
            why = (
                "it is not a profile run"
                if record.mode != "profile"
                else "its site does not run Nsight Compute, or the report could not be made"
            )
            raise NotFoundError(f"run {record.run_id} has no Nsight Compute report: {why}")
        return record, data

    async def run(self, run_id: str, *, caller: Caller) -> RunRecord:
        """One run by its id; admins may give the first characters of it, as tables show (others must
        give the whole id: prefixes would let anyone walk the runs). A hidden board's run is 'not found'
        to all but admins."""
        store = self._require_store()
        wanted = run_id.strip().lower()
        missing = NotFoundError(f"no run with id {shown(run_id)}")
        if not caller.admin:
            if not FULL_RUN_ID.fullmatch(wanted):
                raise missing
            record = await store.get_run(wanted)
            if record is None or record.hidden:
                raise missing
            return record
        if not RUN_ID_PREFIX.fullmatch(wanted):  # names no run: not found, whatever it is
            raise NotFoundError(f"no run with id {shown(run_id)}: give the id, or its first characters (hex)")
        matches = await store.find_runs(wanted)
        if not matches:
            raise missing
        if len(matches) > 1 and wanted not in matches:
            raise UserError(f"{shown(run_id)} matches several runs: give more of the id")
        found = await store.get_run(matches[0])
        if found is None:
            raise missing
        return found

    async def runs(
        self,
        *,
        leaderboard: str | None = None,
        user: str | None = None,
        unfinished: bool = False,
        site: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        caller: Caller,
    ) -> list[RunRecord]:
        """Runs, newest first: of a leaderboard, a user, a site, unfinished ones, queued since; at most
        ``limit``. Listing every user's runs is an admin's."""
        require_admin(caller, "listing runs is for the gateway's admins")
        for what, value in (("leaderboard name", leaderboard), ("user name", user), ("site name", site)):
            if value is not None:
                check_name(what, value)
        if limit < 1:
            raise UserError(f"a limit of {limit} runs: give at least 1")
        return await self._require_store().list_runs(
            leaderboard=leaderboard, user=user, unfinished=unfinished, site=site, since=since, limit=limit
        )

    async def run_events(self, run_id: str, *, caller: Caller) -> list[RunEvent]:
        """Every recorded event of one run (by id, or prefix for admins), oldest first."""
        record = await self.run(run_id, caller=caller)
        return await self._require_store().events([record.run_id])

    async def cancel_run(self, run_id: str, *, caller: Caller) -> str:
        """Cancel a run (one's own; admins any): at once if no worker started it, else its worker
        cancels the job; says which."""
        record = await self.run(run_id, caller=caller)
        if not caller.may_act_for(record.account):
            raise RefusedError("you can cancel only your own runs", FORBIDDEN)
        outcome = await self._require_store().request_cancel(record.run_id)
        return {
            "queued": f"run {record.run_id} was cancelled before it started",
            "requested": f"run {record.run_id}: cancel requested; its worker cancels "
            f"job {record.job_id or '(not yet submitted)'}",
            "finished": f"run {record.run_id} has already finished ({record.state})",
            "unknown": f"no run with id {record.run_id}",
        }[outcome]

    async def set_drained(
        self, site: str, drained: bool, reason: str | None = None, *, caller: Caller
    ) -> None:
        """Drain a site (routing skips it; its running jobs go on) or open it again."""
        require_admin(caller, "draining sites is for the gateway's admins")
        if self.site(site).kind == "local":
            raise UserError("the built-in local site cannot be drained")
        if reason is not None:
            check_text("the reason", reason, MAX_REASON_CHARS)
        await self._require_store().set_drained(site, drained, reason)
        self._health = (0.0, {})

    async def site_health(self) -> dict[str, SiteHealth]:
        return await self._require_store().site_health()

    async def isolation_checks(self) -> dict[str, IsolationCheck]:
        """The last isolation probe of each site (gateway/isolation.py), as `sites check` recorded it."""
        return await self._require_store().isolation_checks()

    async def runs_by_state(self) -> dict[str, int]:
        """Every recorded run counted by state (metrics)."""
        return await self._require_store().runs_by_state()

    async def unfinished_by_state(self) -> dict[str, int]:
        """Unfinished runs counted by state, at a cost that follows the queue, not the history."""
        return await self._require_store().unfinished_by_state()

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        await self._require_store().ping()

    async def stats(self, window_s: int = 86_400) -> GatewayStats:
        """Totals, unfinished runs by state and per-site numbers over the last ``window_s`` seconds."""
        return await self._require_store().stats(window_s)
