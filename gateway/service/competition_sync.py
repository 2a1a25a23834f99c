"""Competitions synced from a reference-kernels checkout: each problem of its competition files becomes a
leaderboard (its task, deadline, GPU types and description), created or updated in one transaction; a
second sync of the same checkout changes nothing. ``CompetitionSync`` is built from the store and the site
directory (which GPU types some site offers); every front end renders the ``SyncReport`` it returns."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from gateway.config.competitions import CheckoutPlan, PlannedBoard, read_checkout, read_checkout_archive
from gateway.config.gpu_types import read_runner_name
from gateway.config.tasks import TaskDefinition
from gateway.core.errors import UserError
from gateway.core.validation import MAX_DESCRIPTION_CHARS, check_name, check_text
from gateway.service.authority import Caller, require_admin
from gateway.service.model import LOCAL_GPU_LABEL, require_store
from gateway.service.sitedir import SiteDirectory
from gateway.store import BoardWrite, LeaderboardRecord, Store

ChangeKind = Literal["created", "updated", "unchanged"]
SYNC_REFUSAL = "syncing competitions is for the gateway's admins"


@dataclass(frozen=True)
class BoardChange:
    """What a sync does (or, in a dry run, would do) to one leaderboard."""

    board: str
    kind: ChangeKind
    competition: str
    source: str  # the competition file and entry it comes from
    fields: tuple[str, ...] = ()  # of an update: "deadline", "GPU types", "description", "task (tests)"
    notes: tuple[str, ...] = ()  # worth an admin's eye: unknown GPU types, unknown task.yml keys

    def summary(self, dry_run: bool = False) -> str:
        """One line: the board, what happens (or in a dry run would happen) to it, which fields change."""
        planned = {"created": "to create", "updated": "to update"}
        kind = planned.get(self.kind, self.kind) if dry_run else self.kind
        return f"{self.board}: {kind}" + (f": {', '.join(self.fields)}" if self.fields else "")


@dataclass(frozen=True)
class SyncReport:
    checkout: str  # as the admin named it (a path, or an archive's file name)
    competitions: tuple[tuple[str, str], ...]  # (name, file)
    changes: tuple[BoardChange, ...]
    dry_run: bool

    @property
    def changed(self) -> bool:
        return any(change.kind != "unchanged" for change in self.changes)

    def headline(self) -> str:
        """The outcome in one sentence (a dry run says what it would do)."""
        if not self.changed:
            verdict = "dry run: nothing would change" if self.dry_run else "nothing changed"
            return f"{verdict}: all {len(self.changes)} leaderboards already match {self.checkout}"
        counts = [sum(c.kind == kind for c in self.changes) for kind in ("created", "updated", "unchanged")]
        if self.dry_run:
            return "dry run, nothing written: {} to create, {} to update, {} unchanged".format(*counts) + (
                f" (from {self.checkout})"
            )
        return "{} created, {} updated, {} unchanged".format(*counts) + f" (from {self.checkout})"


def planned_gpu_types(board: PlannedBoard, offered: Sequence[str]) -> tuple[str, ...]:
    """The GPU types a board ranks: the competition file's, else the task's own ``gpus`` list, else every
    type a site offers (as `leaderboard create` does). A KernelBot runner name that no site offers as it is
    reads as its GPU type (``MI300x8`` ranks ``MI300X``; the task's own ``multi_gpu`` says how many a run
    takes)."""
    chosen = board.gpu_types or tuple(board.task.gpu_types) or tuple(offered)
    return tuple(sorted({gpu if gpu in offered else read_runner_name(gpu).gpu_type for gpu in chosen}))


def _task_fields(stored: Mapping[str, object], task: TaskDefinition) -> list[str]:
    wanted = task.model_dump()
    return sorted(key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key))


def plan_changes(
    plan: CheckoutPlan, existing: Mapping[str, LeaderboardRecord], known_gpu_types: Sequence[str]
) -> list[tuple[BoardChange, BoardWrite]]:
    """Each planned board against its stored one (``existing``, by name): created, updated (which
    fields) or unchanged, with the write that makes it so. UserError for a board that cannot be."""
    offered = [gpu for gpu in known_gpu_types if gpu != LOCAL_GPU_LABEL]
    out = []
    for board in plan.boards:
        check_name("leaderboard name", board.name)
        check_text(f"{board.source}: the description", board.description, MAX_DESCRIPTION_CHARS)
        gpu_types = planned_gpu_types(board, offered)
        if LOCAL_GPU_LABEL in gpu_types:
            raise UserError(
                f"{board.source}: gpus: {LOCAL_GPU_LABEL!r} is the gateway's own machine: not a GPU type"
            )
        notes = list(board.task.unknown_key_notes())
        unknown = [gpu for gpu in gpu_types if gpu not in offered]
        if unknown:
            notes.append(
                f"no site offers GPU type(s) {', '.join(unknown)} yet: the board ranks them once a site does"
            )
        if not gpu_types:
            notes.append("no GPU types: the competition file lists none and no site offers any")
        stored = existing.get(board.name)
        write = BoardWrite(
            name=board.name,
            description=board.description,
            task=board.task.model_dump(),
            ranking_by=board.task.ranking_by,
            gpu_types=gpu_types,
            deadline=board.deadline,
            secret_seed=secrets.randbits(31),
        )
        fields: list[str] = []
        if stored is not None:
            task_fields = _task_fields(stored.task, board.task)
            fields += [f"task ({', '.join(task_fields)})"] if task_fields else []
            fields += ["deadline"] if stored.deadline != board.deadline else []
            fields += ["GPU types"] if sorted(stored.gpu_types) != list(gpu_types) else []
            fields += ["description"] if stored.description != board.description else []
        kind: ChangeKind = "created" if stored is None else "updated" if fields else "unchanged"
        change = BoardChange(board.name, kind, board.competition, board.source, tuple(fields), tuple(notes))
        out.append((change, write))
    return out


class CompetitionSync:
    def __init__(self, store: Store | None, sites: SiteDirectory) -> None:
        self.store = store
        self.sites = sites

    async def sync_checkout(
        self, checkout: Path, *, competition: str | None = None, dry_run: bool = False, caller: Caller
    ) -> SyncReport:
        """Sync the leaderboards of ``checkout``'s competition files (``competition``: one file's), read on
        this machine and never outside the checkout; ``dry_run`` writes nothing."""
        require_admin(caller, SYNC_REFUSAL)
        plan = await asyncio.to_thread(read_checkout, checkout, competition)
        return await self._sync(plan, str(checkout), dry_run, caller)

    async def sync_archive(
        self,
        data: bytes,
        file_name: str,
        *,
        competition: str | None = None,
        dry_run: bool = False,
        caller: Caller,
    ) -> SyncReport:
        """As ``sync_checkout``, for an uploaded archive of a checkout (unpacked with limits)."""
        require_admin(caller, SYNC_REFUSAL)
        plan = await asyncio.to_thread(read_checkout_archive, data, file_name, competition)
        return await self._sync(plan, file_name, dry_run, caller)

    async def _sync(self, plan: CheckoutPlan, checkout: str, dry_run: bool, caller: Caller) -> SyncReport:
        store = require_store(self.store)
        existing = {}
        for board in plan.boards:
            if (record := await store.get_leaderboard(board.name)) is not None:
                existing[board.name] = record
        planned = [
            (await self._with_runs_noted(store, change), write)
            for change, write in plan_changes(plan, existing, self.sites.known_gpu_types())
        ]
        if not dry_run:
            writes = [write for change, write in planned if change.kind != "unchanged"]
            await store.write_boards(writes, creator=caller.account)
        changes = tuple(change for change, _ in planned)
        return SyncReport(checkout, plan.competitions, changes, dry_run)

    @staticmethod
    async def _with_runs_noted(store: Store, change: BoardChange) -> BoardChange:
        """An update of a board's task, noting the submissions it holds (they ran the task before)."""
        if not any(field.startswith("task") for field in change.fields):
            return change
        summary = next(iter(await store.list_leaderboards(include_hidden=True, name=change.board)), None)
        if summary is None or not summary.submissions:
            return change
        note = f"its {summary.submissions} submission(s) ran the former task; their scores stay ranked"
        return replace(change, notes=(*change.notes, note))
