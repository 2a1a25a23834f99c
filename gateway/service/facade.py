"""The service: the one API the front ends (CLI, HTTP API, Discord bot) call.

``Gateway`` is a thin facade over its collaborators, which front ends call as its attributes: ``sites``
(gateway/service/sitedir.py), ``placement`` (where runs go: gateway/service/placement.py), ``processor``
(gateway/service/processor.py), ``boards`` (gateway/service/boards.py), ``competition_sync``
(competitions synced from a reference-kernels checkout: gateway/service/competition_sync.py), ``accounts``
and ``limits`` (the API's shared limits), ``competitions`` (exports, submitted code, deletion:
gateway/service/competitions.py). ``enqueue`` checks a submission and stores it with its runs (a public
run, and for leaderboard mode a secret rerun) in one transaction; workers (gateway.service.queue_worker)
claim runs and hand them to the processor; ``follow`` streams any run's events from PostgreSQL
(LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from gateway.config.settings import Settings
from gateway.config.sites import SiteConfig, load_sites
from gateway.config.tasks import TaskDefinition
from gateway.core.errors import NotFoundError, RefusedError, UserError
from gateway.core.modes import Mode, as_mode
from gateway.core.validation import (
    BIGINT_MAX,
    FULL_RUN_ID,
    RUN_ID_PREFIX,
    check_name,
    public_submission_key,
    shown,
)
from gateway.running.backends.base import Backend
from gateway.running.execution import RunReport
from gateway.running.policy import RoutingPolicy, load_policy, policy_path
from gateway.running.routing import Router
from gateway.service.accounts import Accounts
from gateway.service.admission import check_request, check_source_for
from gateway.service.authority import ANONYMOUS, FORBIDDEN, OPERATOR, Caller, require_admin
from gateway.service.boards import Boards, LeaderboardView
from gateway.service.competition_sync import CompetitionSync
from gateway.service.competitions import Competitions
from gateway.service.isolation import IsolationGate, Verifier
from gateway.service.limits import SharedLimits
from gateway.service.model import EventCallback, QueuedRun, Submission, SubmitRequest, require_store
from gateway.service.placement import Placement
from gateway.service.pools import WarmPools
from gateway.service.processor import RunProcessor
from gateway.service.queue_worker import Worker
from gateway.service.sitedir import SiteDirectory
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
from gateway.store.changes import CHANGES_CHANNEL, parse_change

__all__ = [  # with the store's typed rows that this API returns, so front ends never import the store
    "ANONYMOUS",
    "CHANGES_CHANNEL",
    "OPERATOR",
    "Caller",
    "Gateway",
    "GatewayStats",
    "IsolationCheck",
    "LeaderboardRecord",
    "LeaderboardSummary",
    "LeaderboardView",
    "Mode",
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
    "UserRecord",
    "as_mode",
    "parse_change",
]


class Gateway:
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
        self.store = store
        self.sites = SiteDirectory(settings, sites, store, policy=policy, backend_factory=backend_factory)
        self.router = Router(lambda site: self.sites.runtime(site).backend.load())
        # which runs a site may take by how it confines submitted code; verify_isolation runs the probe
        self.isolation = IsolationGate(store, verify_isolation)
        self.placement = Placement(self.sites, self.router, self.isolation)
        self.pools = WarmPools(store, self.sites)
        self.router.warm = self.pools.free_partitions  # routing prefers a free warm pool
        self.processor = RunProcessor(settings, store, self.sites, self.placement, self.router, self.pools)
        self.boards = Boards(settings, store, self.sites)
        self.competition_sync = CompetitionSync(store, self.sites)
        self.accounts = Accounts(store)
        self.limits = SharedLimits(store)
        self.competitions = Competitions(store, self.boards)  # exports, code, deletion (issue 20)

    @classmethod
    async def open(cls, settings: Settings, *, use_database: bool = True) -> Gateway:
        sites = load_sites(settings.sites_dir) if settings.sites_dir.is_dir() else {}
        dsn = settings.database_dsn() if use_database else None
        policy = load_policy(policy_path(settings), list(sites))
        store = await Store.connect(dsn) if dsn else None
        # the isolation probe submits through a gateway of its one site (the site check never imports this
        # module: it is given the function that makes one)
        from gateway.sitecheck.isolation import verify_isolation

        verifier = functools.partial(verify_isolation, functools.partial(probe_gateway, settings))
        return cls(settings, sites, store, policy=policy, verify_isolation=verifier)

    async def close(self) -> None:
        await self.pools.close()
        await self.sites.close()
        if self.store is not None:
            await self.store.close()

    def worker(self, *, name: str | None = None, concurrency: int | None = None) -> Worker:
        """A queue worker of this gateway's processor and store (``run`` it, or ``drain`` runs)."""
        return Worker(self.processor, self._require_store(), name=name, concurrency=concurrency)

    def _require_store(self) -> Store:
        return require_store(self.store)

    # -- submissions --------------------------------------------------------------------------------

    async def enqueue(
        self, request: SubmitRequest, known_board: LeaderboardRecord | None = None
    ) -> Submission:
        """Check and store a submission with its queued runs; returns at once. Workers run it.

        A leaderboard-mode submission gets a public run and a secret rerun (the leaderboard's secret seed);
        it ranks only when both pass. Bad input raises UserError and stores nothing. ``known_board``: the
        leaderboard named, as a front end keeps it (Boards.task_for)."""
        return (await self._enqueue(request, known_board))[0]

    async def _enqueue(
        self, request: SubmitRequest, known_board: LeaderboardRecord | None = None
    ) -> tuple[Submission, TaskDefinition]:
        store = self._require_store()
        check_request(request, self.settings.max_submission_bytes, database=self.store is not None)
        if request.site is not None:  # the site it names must be open (checked again when routed)
            await self.placement.refuse_drained(request.site)
        task, board = await self.boards.task_for(request, known_board)  # parsed once, on its way to its runs
        check_source_for(request, task)
        gpu = self.placement.gpu_type_of(request, board)
        self.placement.refuse_too_few_gpus(gpu, task.gpus_per_run, request.site)
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
        queued = [QueuedRun(r.run_id, gpu, r.secret) for r in runs]
        return Submission(submission_id, board.name if board else None, queued, public_id), task

    async def submit(self, request: SubmitRequest, on_event: EventCallback | None = None) -> RunReport:
        """Enqueue a submission and see it through in this process (as a worker for its own runs; a
        worker elsewhere may take some, and they are followed); return the public run's report with the
        secret rerun's verdict. Without a database the run goes straight to its site."""
        if self.store is None or (request.admin and request.on_this_machine and request.leaderboard is None):
            # a run on this machine is never a leaderboard's ('local' is no board's GPU type): it is not
            # recorded (one naming a leaderboard is refused by enqueue, saying what the board ranks)
            return await self._run_direct(request, on_event)
        submission, task = await self._enqueue(request)
        reports = await self.worker().drain(submission.run_ids, on_event, task)
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
        store = self._require_store()
        if run_ids:
            wanted = [(await self.run(run_id, caller=OPERATOR)) for run_id in run_ids]
        else:
            wanted = await store.list_runs(unfinished=True, site=site, limit=10_000)
        pending = [r.run_id for r in wanted if r.finished_at is None and (site is None or r.site == site)]
        reports = await self.worker().drain(pending, on_event)
        return [reports[run_id] for run_id in pending if run_id in reports]

    async def _run_direct(self, request: SubmitRequest, on_event: EventCallback | None) -> RunReport:
        check_request(request, self.settings.max_submission_bytes, database=self.store is not None)
        task = request.task if request.task is not None else (await self.boards.task_for(request))[0]
        check_source_for(request, task)
        return await self.processor.run_direct(request, task, on_event)

    # -- following and managing runs ----------------------------------------------------------------

    async def follow(self, run_ids: list[str], after_id: int = 0) -> AsyncIterator[RunEvent]:
        """Each event of these runs as it happens (from PostgreSQL's LISTEN/NOTIFY), until all finished."""
        async for event in self._require_store().follow(run_ids, after_id):
            yield event

    def event_notifications(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[tuple[str, str]]]:
        """LISTEN for run events, for a process that fans them out to many followers (the HTTP API):
        a queue of (channel, JSON payload naming the run, kind and state); ("", "") when the connection
        dropped, after which followers must re-read what they follow with ``events_after``. The same
        connection hears CHANGES_CHANNEL (gateway/store/changes.py): what the API's caches must drop."""
        return self._require_store().notifications(EVENTS_CHANNEL, CHANGES_CHANNEL)

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
        if not runs or ((runs[0].hidden or runs[0].deleted) and not caller.admin):
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

    async def isolation_checks(self) -> dict[str, IsolationCheck]:
        """The last isolation probe of each site (gateway/service/isolation.py), as `sites check` recorded
        it."""
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


def probe_gateway(settings: Settings, site: SiteConfig) -> Gateway:
    """A gateway of one site and no database: what the site check's probe jobs submit through."""
    return Gateway(settings, {site.name: site}, None)
