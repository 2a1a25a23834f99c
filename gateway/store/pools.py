"""Warm pools (migration 0012): the pool jobs of every worker in one table, so the cap of pool jobs per
partition holds across workers and a pool is handed one run at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from gateway.store.base import StoreBase, retried

# pg_advisory_xact_lock(class, key) of a partition's pool reservations: class "gwPL", key its name's hash
POOL_LOCK_CLASS = 0x6777_504C


@dataclass(frozen=True)
class PoolRecord:
    id: str
    site: str
    partition: str
    gpus: int
    state: str  # starting | ready | ended
    job_id: str | None
    busy_run: str | None
    created_at: datetime
    runs_done: int
    busy_s: float


def _pool(row: asyncpg.Record) -> PoolRecord:
    return PoolRecord(
        row["id"],
        row["site"],
        row["partition"],
        row["gpus"],
        row["state"],
        row["job_id"],
        str(row["busy_run"]) if row["busy_run"] is not None else None,
        row["created_at"],
        row["runs_done"],
        row["busy_s"],
    )


class PoolsStore(StoreBase):
    @retried
    async def reserve_pool(self, pool_id: str, site: str, partition: str, gpus: int, cap: int) -> bool:
        """A row for a new pool job, only while the partition's live pools (every worker's) are under
        ``cap``; False when it is full. Reservations of one partition are taken one at a time."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", POOL_LOCK_CLASS, f"{site}/{partition}"
            )
            live = await conn.fetchval(
                "SELECT count(*) FROM warm_pools WHERE site = $1 AND partition = $2 AND state <> 'ended'",
                site,
                partition,
            )
            if live >= cap:
                return False
            await conn.execute(
                "INSERT INTO warm_pools (id, site, partition, gpus, state) "
                "VALUES ($1, $2, $3, $4, 'starting') ON CONFLICT (id) DO NOTHING",
                pool_id,
                site,
                partition,
                gpus,
            )
            return True

    @retried
    async def pool_submitted(self, pool_id: str, job_id: str) -> None:
        async with self._conn() as conn:
            await conn.execute("UPDATE warm_pools SET job_id = $2 WHERE id = $1", pool_id, job_id)

    @retried
    async def pool_ready(self, pool_id: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE warm_pools SET state = 'ready', ready_at = now(), last_used_at = now() "
                "WHERE id = $1 AND state = 'starting'",
                pool_id,
            )

    @retried
    async def end_pool(self, pool_id: str, reason: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE warm_pools SET state = 'ended', ended_at = now(), end_reason = $2 "
                "WHERE id = $1 AND state <> 'ended'",
                pool_id,
                reason[:500],
            )

    async def take_pool(self, site: str, partition: str, gpus: int, run_id: str) -> PoolRecord | None:
        """A ready pool of this partition with nothing to do, now this run's; None when every one is
        busy. The most recently used goes first, so the others idle out and give their GPUs back. A pool
        whose run finished without releasing it (its worker died) counts as free. Not retried: a take
        whose acknowledgement was lost leaves the pool busy with a run that then runs cold, and the run's
        end (or the next take) frees it."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "UPDATE warm_pools SET busy_run = $4, last_used_at = now() WHERE id = ("
                "  SELECT p.id FROM warm_pools p WHERE p.site = $1 AND p.partition = $2 AND p.gpus = $3 "
                "  AND p.state = 'ready' AND (p.busy_run IS NULL OR EXISTS ("
                "    SELECT 1 FROM runs r WHERE r.id = p.busy_run AND r.finished_at IS NOT NULL)) "
                "  ORDER BY p.last_used_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED"
                ") RETURNING id, site, partition, gpus, state, job_id, busy_run, created_at, runs_done, "
                "busy_s",
                site,
                partition,
                gpus,
                run_id,
            )
        return _pool(row) if row is not None else None

    @retried
    async def release_pool(self, pool_id: str, run_id: str, busy_s: float | None) -> None:
        """The run ended: its pool is free again (if it still holds this run), and the run's GPU time
        (its wall time in the pool times the pool's GPUs) is on the run."""
        async with self._conn() as conn, conn.transaction():
            gpus = await conn.fetchval(
                "UPDATE warm_pools SET busy_run = NULL, last_used_at = now(), runs_done = runs_done + 1, "
                "busy_s = busy_s + coalesce($3, 0) WHERE id = $1 AND busy_run = $2 RETURNING gpus",
                pool_id,
                run_id,
                busy_s,
            )
            await conn.execute(
                "UPDATE runs SET pool_id = $2, gpu_seconds = $3 * coalesce($4::int, "
                "  (SELECT gpus FROM warm_pools WHERE id = $2)) WHERE id = $1",
                run_id,
                pool_id,
                busy_s,
                gpus,
            )

    @retried
    async def live_pools(self, site: str | None = None) -> list[PoolRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id, site, partition, gpus, state, job_id, busy_run, created_at, runs_done, busy_s "
                "FROM warm_pools WHERE state <> 'ended' AND ($1::text IS NULL OR site = $1) "
                "ORDER BY created_at",
                site,
            )
        return [_pool(row) for row in rows]

    @retried
    async def pool_of_run(self, run_id: str) -> PoolRecord | None:
        """The pool a run was handed to (the one it holds, or the one that ran it)."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT id, site, partition, gpus, state, job_id, busy_run, created_at, runs_done, busy_s "
                "FROM warm_pools WHERE busy_run = $1 OR id = (SELECT pool_id FROM runs WHERE id = $1) "
                "LIMIT 1",
                run_id,
            )
        return _pool(row) if row is not None else None

    @retried
    async def free_pool_partitions(self, gpus: int) -> set[tuple[str, str]]:
        """The (site, partition) pairs with a ready pool for runs of ``gpus`` GPUs that has nothing to do."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT p.site, p.partition FROM warm_pools p "
                "WHERE p.state = 'ready' AND p.gpus = $1 AND (p.busy_run IS NULL OR EXISTS ("
                "  SELECT 1 FROM runs r WHERE r.id = p.busy_run AND r.finished_at IS NOT NULL))",
                gpus,
            )
        return {(row["site"], row["partition"]) for row in rows}
