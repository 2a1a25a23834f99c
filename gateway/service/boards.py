"""Leaderboards and users as the service manages them: create (from a task directory or an uploaded
archive), read with rankings and standings, close with a deadline, limit, delete; ban and unban users;
find the leaderboard and task a submission runs as. ``Boards`` is built from the settings, the store and
the site directory (the GPU types a board may rank)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from gateway.config.settings import Settings
from gateway.config.task_archive import load_task_archive
from gateway.config.tasks import TaskDefinition, load_task
from gateway.core.errors import NotFoundError, TaskError, UserError
from gateway.core.modes import Mode
from gateway.core.suggest import did_you_mean
from gateway.core.validation import (
    MAX_DESCRIPTION_CHARS,
    VISIBILITIES,
    check_account,
    check_name,
    check_text,
    shown,
)
from gateway.service.authority import Caller, require_admin
from gateway.service.model import LOCAL_GPU_LABEL, SubmitRequest, require_store
from gateway.service.sitedir import SiteDirectory
from gateway.store import (
    LeaderboardRecord,
    LeaderboardSummary,
    RankedEntry,
    RateLimit,
    RunRecord,
    ScorePoint,
    Standing,
    Store,
)


@dataclass(frozen=True)
class LeaderboardView:
    board: LeaderboardRecord
    ranking: dict[str, list[RankedEntry]]  # GPU type -> ranked entries, best first
    recent: list[RunRecord]
    limits: list[RateLimit] = field(default_factory=list)


class Boards:
    def __init__(self, settings: Settings, store: Store | None, sites: SiteDirectory) -> None:
        self.settings = settings
        self.store = store
        self.sites = sites

    def _require_store(self) -> Store:
        return require_store(self.store)

    def known_gpu_types(self) -> list[str]:
        return self.sites.known_gpu_types()

    # -- leaderboards -------------------------------------------------------------------------------

    async def create_leaderboard(
        self,
        name: str,
        task: TaskDefinition,
        gpu_types: list[str] | None = None,
        *,
        deadline: datetime | None = None,
        visibility: str = "public",
        creator: str | None = None,
        description: str | None = None,
        exist_ok: bool = True,
        caller: Caller,
    ) -> LeaderboardRecord:
        """Create a leaderboard for a task (its description unless one is given), ranking ``gpu_types``
        (default: every type a site offers; never 'local', the gateway's own machine). One that exists is
        returned unchanged (concurrent first submitters agree on it), or with ``exist_ok=False`` refused."""
        require_admin(caller, "making a leaderboard is for the gateway's admins")
        store = self._require_store()
        check_name("leaderboard name", name)
        if creator is not None:
            check_account(creator)
        description = task.description if description is None else description
        check_text("the description", description, MAX_DESCRIPTION_CHARS)
        if visibility not in VISIBILITIES:
            raise UserError(f"visibility {visibility!r}: expected one of {', '.join(VISIBILITIES)}")
        if LOCAL_GPU_LABEL in (gpu_types or []):
            raise UserError(
                f"{LOCAL_GPU_LABEL!r} (the gateway's own machine) cannot be a leaderboard's GPU type; "
                f"offered: {', '.join(self._board_gpu_types()) or 'none: add a site'}"
            )
        unknown = sorted(set(gpu_types or []) - set(self.known_gpu_types()))
        if unknown:
            raise UserError(
                f"no site offers GPU type(s) {', '.join(map(repr, unknown))}; "
                f"offered: {', '.join(self.known_gpu_types())}"
            )
        if not exist_ok and (existing := await store.get_leaderboard(name)) is not None:
            raise UserError(
                f"leaderboard {shown(name)} already exists (task {existing.task.get('name', '?')}, GPUs "
                f"{', '.join(existing.gpu_types)}); nothing changed"
            )
        return await store.create_leaderboard(
            name,
            description,
            task.model_dump(),
            task.ranking_by,
            gpu_types or self._board_gpu_types(),
            secret_seed=secrets.randbits(31),
            deadline=deadline,
            visibility=visibility,
            creator=creator,
        )

    def _board_gpu_types(self) -> list[str]:
        """The GPU types a leaderboard may rank: every type a site offers, never the local machine."""
        return [gpu for gpu in self.known_gpu_types() if gpu != LOCAL_GPU_LABEL]

    async def get_leaderboard(self, name: str, *, caller: Caller) -> LeaderboardRecord:
        """A leaderboard as ``caller`` may see it: a hidden one is 'not found' to all but admins, with the
        very message of a board that does not exist."""
        check_name("leaderboard name", name)
        board = await self._require_store().get_leaderboard(name)
        if board is None or (board.visibility == "hidden" and not caller.admin):
            raise NotFoundError(f"no leaderboard named {shown(name)}")
        return board

    async def leaderboards(self, *, caller: Caller) -> list[LeaderboardSummary]:
        """Every leaderboard the caller may see (hidden ones only for admins), by name."""
        return await self._require_store().list_leaderboards(include_hidden=caller.admin)

    async def leaderboard_summary(self, name: str, *, caller: Caller) -> LeaderboardSummary:
        """One leaderboard with its GPU types and its numbers of submissions and runs."""
        board = await self.get_leaderboard(name, caller=caller)
        found = await self._require_store().list_leaderboards(include_hidden=True, name=board.name)
        if not found:
            raise NotFoundError(f"no leaderboard named {shown(name)}")
        return found[0]

    async def delete_leaderboard(self, name: str, *, caller: Caller) -> tuple[int, int]:
        """Delete a leaderboard with its submissions and runs; returns (submissions, runs) deleted."""
        require_admin(caller, "deleting a leaderboard is for the gateway's admins")
        check_name("leaderboard name", name)
        deleted = await self._require_store().delete_leaderboard(name)
        if deleted is None:
            raise NotFoundError(f"no leaderboard named {shown(name)}")
        return deleted

    async def set_deadline(
        self, name: str, deadline: datetime | None, *, caller: Caller
    ) -> LeaderboardRecord:
        """Close a leaderboard to submissions at ``deadline`` (timezone-aware), or never (None)."""
        require_admin(caller, "setting a deadline is for the gateway's admins")
        if deadline is not None and deadline.tzinfo is None:
            raise UserError("a deadline needs a time zone (e.g. 2026-12-31T23:59Z)")
        check_name("leaderboard name", name)
        if not await self._require_store().set_deadline(name, deadline):
            raise NotFoundError(f"no leaderboard named {shown(name)}")
        return await self.get_leaderboard(name, caller=caller)

    async def set_rate_limit(
        self,
        name: str,
        mode: Mode,
        max_submissions: int | None,
        per_seconds: int | None = None,
        *,
        caller: Caller,
    ) -> RateLimit | None:
        """Allow each user ``max_submissions`` submissions of ``mode`` per ``per_seconds`` on a
        leaderboard; ``max_submissions=None`` removes the limit. Returns the limit now in force."""
        require_admin(caller, "setting rate limits is for the gateway's admins")
        board = await self.get_leaderboard(name, caller=caller)
        limit = None
        if max_submissions is not None:
            if per_seconds is None:
                raise UserError("a rate limit needs a window: how many submissions per how long")
            if not 1 <= max_submissions <= 2**31 - 1:
                raise UserError(f"at most {max_submissions} submissions: give a number from 1 to {2**31 - 1}")
            if not 1 <= per_seconds <= 2**31 - 1:
                raise UserError(f"a window of {per_seconds} s: give from 1 s to about 68 years")
            limit = RateLimit(mode, max_submissions, per_seconds)
        await self._require_store().set_rate_limit(board.id, limit, mode)
        return limit

    async def rate_limits(self, name: str, *, caller: Caller) -> list[RateLimit]:
        board = await self.get_leaderboard(name, caller=caller)
        return await self._require_store().rate_limits(board.id)

    async def set_unfinished_cap(self, name: str, cap: int | None, *, caller: Caller) -> LeaderboardRecord:
        """Cap how many unfinished runs (queued or running, on every leaderboard together) a user may have
        when submitting to this leaderboard; None: the gateway's default (max_unfinished_runs_per_user)."""
        require_admin(caller, "setting a leaderboard's caps is for the gateway's admins")
        check_name("leaderboard name", name)
        if cap is not None and not 2 <= cap <= 2**31 - 1:
            raise UserError(
                f"a cap of {cap} unfinished runs: give from 2 (a leaderboard submission queues a public run "
                f"and its secret rerun) to {2**31 - 1}"
            )
        if not await self._require_store().set_unfinished_cap(name, cap):
            raise NotFoundError(f"no leaderboard named {shown(name)}")
        return await self.get_leaderboard(name, caller=caller)

    async def leaderboard(
        self, name: str, recent: int = 20, top: int = 100, gpu: str | None = None, *, caller: Caller
    ) -> LeaderboardView:
        """A leaderboard's ranking per GPU type (or one GPU type), its recent runs and its rate limits."""
        store = self._require_store()
        board = await self.get_leaderboard(name, caller=caller)
        return LeaderboardView(
            board,
            await self.rankings(board, gpu, top),
            await self.recent_runs(board, recent),
            await store.rate_limits(board.id),
        )

    async def rankings(
        self, board: LeaderboardRecord, gpu: str | None = None, top: int = 100
    ) -> dict[str, list[RankedEntry]]:
        """The ranking of a leaderboard already read, per GPU type (or of one GPU type): one query each."""
        gpus = board.gpu_types
        if gpu is not None:
            if gpu not in board.gpu_types:
                raise UserError(
                    f"leaderboard {board.name} does not rank {gpu!r}; it ranks {', '.join(board.gpu_types)}"
                )
            gpus = [gpu]
        store = self._require_store()
        return {g: await store.ranking(board.id, g, top) for g in gpus}

    async def recent_runs(self, board: LeaderboardRecord, limit: int = 20) -> list[RunRecord]:
        """A leaderboard's latest public runs, newest first (none for a limit of 0)."""
        return await self._require_store().recent_runs(board.id, limit) if limit > 0 else []

    async def score_timeline(
        self, name: str, gpu_type: str, limit: int = 2000, *, caller: Caller
    ) -> list[ScorePoint]:
        """Every ranked run on one GPU type of a leaderboard, oldest first (charts of scores over time)."""
        board = await self.get_leaderboard(name, caller=caller)
        if gpu_type not in board.gpu_types:
            raise NotFoundError(f"leaderboard {board.name} does not rank {shown(gpu_type)}")
        return await self._require_store().score_timeline(board.id, gpu_type, limit)

    async def task_for(
        self, request: SubmitRequest, known: LeaderboardRecord | None = None
    ) -> tuple[TaskDefinition, LeaderboardRecord | None]:
        """The task a submission runs as and its leaderboard: the one it names (or its task's name), made
        from its task for an admin when there is none; without a database, the request's own task.
        ``known``: the board of that name as a front end keeps it (not read again, if the caller may see
        it; what may change under a submission its transaction reads)."""
        if self.store is None:
            if request.task is None:
                raise UserError("give --task: there is no database to look the leaderboard up in")
            return request.task, None
        name = request.leaderboard or (request.task.name if request.task else None)
        if name is None:
            raise UserError("give --task or --leaderboard")
        if known is not None and known.name == name and (known.visibility != "hidden" or request.admin):
            return TaskDefinition.from_json(known.task), known
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
            if board.task == request.task.model_dump():  # made of this task (not a concurrent other's)
                return request.task, board  # so it is not parsed again
        return TaskDefinition.from_json(board.task), board

    # -- users ----------------------------------------------------------------------------------------

    async def set_banned(self, user: str, banned: bool, *, caller: Caller) -> bool:
        """Ban a user (an account: 'discord:<id>' for a Discord user) from submitting, or lift the ban (a
        user not seen yet is recorded, so a ban can come before their first submission); True if this
        changed anything."""
        require_admin(caller, "banning users is for the gateway's admins")
        check_account(user)
        store = self._require_store()
        if not banned and await store.get_user(user) is None:
            raise UserError(f"no user named {shown(user)}")
        return await store.set_banned(user, banned)

    async def task_of(self, name: str, *, caller: Caller) -> TaskDefinition:
        """The task a leaderboard runs (its description, files and starter templates)."""
        return TaskDefinition.from_json((await self.get_leaderboard(name, caller=caller)).task)

    async def standing(self, name: str, gpu_type: str, user: str, *, caller: Caller) -> Standing | None:
        """A user's rank on one GPU type of a leaderboard, None while nothing of theirs is ranked."""
        board = await self.get_leaderboard(name, caller=caller)
        check_account(user)
        return await self._require_store().standing(board.id, gpu_type, user)

    async def history(self, name: str, user: str, limit: int = 20, *, caller: Caller) -> list[RunRecord]:
        """A user's own runs on a leaderboard, newest first."""
        board = await self.get_leaderboard(name, caller=caller)
        check_account(user)
        return await self._require_store().history(user, board.id, limit)

    def task_directories(self) -> list[str]:
        """The task directories admins may create leaderboards from by name (below settings.tasks_dir)."""
        root = self.settings.tasks_dir
        if not root.is_dir():
            return []
        return sorted(d.name for d in root.iterdir() if (d / "task.yml").is_file())

    async def load_task_directory(self, name: str) -> TaskDefinition:
        """One of ``task_directories()`` read as a task; any other name is refused."""
        if name not in self.task_directories():
            offered = ", ".join(self.task_directories()) or "none"
            raise UserError(f"no task directory named {shown(name)}; there are: {offered}")
        return await asyncio.to_thread(load_task, self.settings.tasks_dir / name)

    async def load_task_archive(self, data: bytes, file_name: str, name: str | None = None) -> TaskDefinition:
        """A task from an uploaded archive (zip or tar), unpacked with limits; TaskError says what is
        wrong."""
        try:
            return await asyncio.to_thread(load_task_archive, data, file_name, name)
        except ValueError as exc:  # the task's name or files as pydantic refused them
            raise TaskError(f"{file_name}: {exc}") from exc
