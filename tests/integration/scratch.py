"""A migrated scratch database with a Store on it, and synthetic submissions made through the store's own
API (create_submission, claim, record_result), for tests of ranking and refusals.

A scratch database, not the dev stack's: nothing a worker of another engineer runs against the shared
database can claim these runs, and counting rows counts only this module's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from gateway.store import LeaderboardRecord, NewRun, Store
from gateway.store.admin import scratch_database
from gateway.store.migrate import apply_migrations

WORKER = "test-worker"


@asynccontextmanager
async def migrated_store(admin_dsn: str, prefix: str) -> AsyncIterator[tuple[Store, str]]:
    """(a Store, its DSN) on a fresh database with every migration applied; dropped at the end."""
    async with scratch_database(admin_dsn, prefix) as dsn:
        await asyncio.to_thread(apply_migrations, dsn)
        store: Store = await Store.connect(dsn, max_size=30)
        try:
            yield store, dsn
        finally:
            await store.close()


async def new_board(
    store: Store, gpus: tuple[str, ...] = ("H100", "A100"), deadline: datetime | None = None
) -> LeaderboardRecord:
    name = f"board-{uuid.uuid4().hex[:8]}"
    return await store.create_leaderboard(
        name, "a test board", {"name": "t"}, "mean", list(gpus), secret_seed=1234, deadline=deadline
    )


@dataclass(frozen=True)
class Sub:
    submission_id: int
    public: str
    secret: str | None
    file_name: str


async def submit(
    store: Store,
    board: LeaderboardRecord | None,
    user: str,
    *,
    gpu: str = "H100",
    mode: str = "leaderboard",
    secret: bool = True,
    code: str | None = None,
    max_unfinished: int | None = None,
    per_minute: int | None = None,
) -> Sub:
    """One submission as Gateway.enqueue makes it: a public run, and a secret rerun when ``secret``
    (``max_unfinished`` and ``per_minute``: the gateway's defaults it passes; None: none)."""
    public = NewRun(str(uuid.uuid4()), mode, gpu, "ab" * 32)
    rerun = NewRun(str(uuid.uuid4()), mode, gpu, "cd" * 32, secret=True) if secret else None
    file_name = f"{user}-{public.run_id[:8]}.py"
    submission_id = await store.create_submission(
        user,
        board.id if board else None,
        "t",
        file_name,
        code if code is not None else f"# {uuid.uuid4()}\n",
        mode,
        [public, rerun] if rerun else [public],
        max_unfinished=max_unfinished,
        per_minute=per_minute,
    )
    return Sub(submission_id, public.run_id, rerun.run_id if rerun else None, file_name)


async def claim(store: Store, *run_ids: str) -> None:
    """Claim runs and route them to alpha as a worker does (a submitter's worker claims both of its runs)."""
    claimed = await store.claim(WORKER, len(run_ids), 60.0, list(run_ids))
    assert sorted(c.run_id for c in claimed) == sorted(run_ids)
    for run_id in run_ids:
        await store.assign_route(run_id, WORKER, "alpha", "h100", "slurm", "test")


async def record(store: Store, run_id: str, passed: bool, score: float | None = None) -> None:
    """Record a claimed run's end as its worker does."""
    recorded = await store.record_result(
        run_id,
        state="COMPLETED" if passed else "FAILED",
        passed=passed,
        score=score if passed else None,
        result=None,
        system_info=None,
        error=None if passed else "a test failed",
        message="passed" if passed else "failed",
    )
    assert recorded, f"run {run_id} was already recorded"


async def finish(store: Store, run_id: str, passed: bool, score: float | None = None) -> None:
    await claim(store, run_id)
    await record(store, run_id, passed, score)


async def finish_submission(
    store: Store,
    sub: Sub,
    score: float,
    *,
    public_passed: bool = True,
    secret_passed: bool = True,
    order: str = "public-first",
) -> None:
    """Claim both runs of a submission, then record them: public first, secret first, or both at once."""
    assert sub.secret is not None
    await claim(store, sub.public, sub.secret)
    public = record(store, sub.public, public_passed, score)
    secret = record(store, sub.secret, secret_passed, score * 1.01)
    if order == "public-first":
        await public
        await secret
    elif order == "secret-first":
        await secret
        await public
    else:
        await asyncio.gather(public, secret)
