"""The store: PostgreSQL through asyncpg. The only module with SQL; every statement is parameterised."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from gateway.errors import StoreError


@dataclass(frozen=True)
class LeaderboardRecord:
    id: int
    name: str
    description: str
    task: dict[str, Any]
    ranking_by: str
    gpu_types: list[str]


@dataclass(frozen=True)
class NewRun:
    run_id: str
    mode: str
    gpu_type: str | None
    site: str
    partition: str | None
    backend: str
    state: str
    result_key: str
    secret: bool = False


@dataclass(frozen=True)
class RankedEntry:
    rank: int
    user_name: str
    gpu_type: str
    score: float
    run_id: str
    file_name: str
    site: str
    finished_at: datetime | None


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    user_name: str
    file_name: str
    mode: str
    gpu_type: str | None
    site: str
    job_id: str | None
    state: str
    passed: bool | None
    score: float | None
    error: str | None
    result: dict[str, Any] | None


@dataclass(frozen=True)
class UnfinishedRun:
    """A run no gateway has finished: what a restarted gateway needs to find or start its job again."""

    run_id: str
    mode: str
    gpu_type: str | None
    site: str
    partition: str | None
    job_id: str | None
    attempt: int
    result_key: str
    user_name: str
    file_name: str
    code: str
    leaderboard: str | None
    task: dict[str, Any] | None


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 10) -> Store:
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, init=_init_connection)
        except (OSError, asyncpg.PostgresError) as exc:
            # the DSN holds a password: name the error, never the DSN
            raise StoreError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except asyncpg.PostgresError as exc:
            raise StoreError(f"database error: {type(exc).__name__}: {exc}") from exc

    async def ensure_user(self, name: str) -> int:
        async with self._conn() as conn:
            user_id: int = await conn.fetchval(
                "INSERT INTO users (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
                "RETURNING id",
                name,
            )
            return user_id

    async def get_leaderboard(self, name: str) -> LeaderboardRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT l.id, l.name, l.description, l.task, l.ranking_by, "
                "COALESCE(array_agg(g.gpu_type ORDER BY g.gpu_type) FILTER (WHERE g.gpu_type IS NOT NULL), "
                "'{}') AS gpu_types "
                "FROM leaderboards l LEFT JOIN leaderboard_gpus g ON g.leaderboard_id = l.id "
                "WHERE l.name = $1 GROUP BY l.id",
                name,
            )
        if row is None:
            return None
        return LeaderboardRecord(
            row["id"], row["name"], row["description"], row["task"], row["ranking_by"], list(row["gpu_types"])
        )

    async def create_leaderboard(
        self, name: str, description: str, task: dict[str, Any], ranking_by: str, gpu_types: list[str]
    ) -> LeaderboardRecord:
        """Create it, or return the existing one of that name unchanged (concurrent creators agree)."""
        async with self._conn() as conn, conn.transaction():
            board_id = await conn.fetchval(
                "INSERT INTO leaderboards (name, description, task, ranking_by) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                name,
                description,
                task,
                ranking_by,
            )
            if board_id is not None:
                await conn.executemany(
                    "INSERT INTO leaderboard_gpus (leaderboard_id, gpu_type) VALUES ($1, $2)",
                    [(board_id, gpu) for gpu in sorted(set(gpu_types))],
                )
        record = await self.get_leaderboard(name)
        if record is None:
            raise StoreError(f"leaderboard {name!r} vanished while it was being created")
        return record

    async def create_submission(
        self,
        user_id: int,
        leaderboard_id: int | None,
        task_name: str,
        file_name: str,
        code: str,
        runs: list[NewRun],
    ) -> int:
        """Store the code (deduplicated by sha256), the submission and its queued runs in one transaction."""
        digest = hashlib.sha256(code.encode()).hexdigest()
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO code_blobs (sha256, code) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
                digest,
                code,
            )
            submission_id: int = await conn.fetchval(
                "INSERT INTO submissions (user_id, leaderboard_id, task_name, file_name, code_sha256) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                user_id,
                leaderboard_id,
                task_name,
                file_name,
                digest,
            )
            await conn.executemany(
                "INSERT INTO runs (id, submission_id, mode, secret, gpu_type, site, partition, backend, "
                "state, result_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [
                    (
                        uuid.UUID(r.run_id),
                        submission_id,
                        r.mode,
                        r.secret,
                        r.gpu_type,
                        r.site,
                        r.partition,
                        r.backend,
                        r.state,
                        r.result_key,
                    )
                    for r in runs
                ],
            )
            return submission_id

    async def mark_submitted(self, run_id: str, job_id: str, state: str, attempt: int = 1) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE runs SET job_id = $2, state = $3, attempt = $4 WHERE id = $1",
                uuid.UUID(run_id),
                job_id,
                state,
                attempt,
            )

    async def unfinished_runs(
        self, site: str | None = None, run_ids: list[str] | None = None
    ) -> list[UnfinishedRun]:
        """Runs that were queued or submitted but never recorded as finished, oldest first."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT r.id, r.mode, r.gpu_type, r.site, r.partition, r.job_id, r.attempt, r.result_key, "
                "       u.name AS user_name, s.file_name, c.code, l.name AS leaderboard, l.task "
                "FROM runs r JOIN submissions s ON s.id = r.submission_id JOIN users u ON u.id = s.user_id "
                "JOIN code_blobs c ON c.sha256 = s.code_sha256 "
                "LEFT JOIN leaderboards l ON l.id = s.leaderboard_id "
                "WHERE r.finished_at IS NULL AND ($1::text IS NULL OR r.site = $1) "
                "      AND ($2::uuid[] IS NULL OR r.id = ANY($2)) ORDER BY r.queued_at",
                site,
                None if run_ids is None else [uuid.UUID(r) for r in run_ids],
            )
        return [
            UnfinishedRun(
                str(row["id"]),
                row["mode"],
                row["gpu_type"],
                row["site"],
                row["partition"],
                row["job_id"],
                row["attempt"],
                row["result_key"],
                row["user_name"],
                row["file_name"],
                row["code"],
                row["leaderboard"],
                row["task"],
            )
            for row in rows
        ]

    async def update_state(self, run_id: str, state: str, *, started: bool = False) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE runs SET state = $2, "
                "started_at = CASE WHEN $3 THEN COALESCE(started_at, now()) ELSE started_at END "
                "WHERE id = $1",
                uuid.UUID(run_id),
                state,
                started,
            )

    async def record_result(
        self,
        run_id: str,
        *,
        state: str,
        passed: bool,
        score: float | None,
        result: dict[str, Any] | None,
        system_info: dict[str, Any] | None,
        error: str | None,
    ) -> None:
        async with self._conn() as conn:
            # finished_at IS NULL: a run is recorded once, whoever finishes it (a resumed gateway too)
            await conn.execute(
                "UPDATE runs SET state = $2, passed = $3, score = $4, result = $5, system_info = $6, "
                "error = $7, finished_at = now() WHERE id = $1 AND finished_at IS NULL",
                uuid.UUID(run_id),
                state,
                passed,
                score,
                result,
                system_info,
                error,
            )

    async def ranking(self, leaderboard_id: int) -> list[RankedEntry]:
        """Each user's best passing public leaderboard-mode score per GPU type, best first."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM ("
                "  SELECT DISTINCT ON (r.gpu_type, u.id) r.gpu_type, u.name AS user_name, r.score, r.id, "
                "         s.file_name, r.site, r.finished_at "
                "  FROM runs r JOIN submissions s ON s.id = r.submission_id JOIN users u ON u.id = s.user_id "
                "  WHERE s.leaderboard_id = $1 AND r.passed AND r.score IS NOT NULL "
                "        AND r.mode = 'leaderboard' AND NOT r.secret "
                "  ORDER BY r.gpu_type, u.id, r.score, r.finished_at"
                ") best ORDER BY gpu_type, score, finished_at",
                leaderboard_id,
            )
        entries: list[RankedEntry] = []
        rank, gpu = 0, None
        for row in rows:
            rank = rank + 1 if row["gpu_type"] == gpu else 1
            gpu = row["gpu_type"]
            entries.append(
                RankedEntry(
                    rank,
                    row["user_name"],
                    row["gpu_type"],
                    row["score"],
                    str(row["id"]),
                    row["file_name"],
                    row["site"],
                    row["finished_at"],
                )
            )
        return entries

    async def recent_runs(self, leaderboard_id: int, limit: int = 20) -> list[RunRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"{_RUN_SELECT} WHERE s.leaderboard_id = $1 ORDER BY r.queued_at DESC LIMIT $2",
                leaderboard_id,
                limit,
            )
        return [_run_record(row) for row in rows]

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(f"{_RUN_SELECT} WHERE r.id = $1", uuid.UUID(run_id))
        return _run_record(row) if row is not None else None


_RUN_SELECT = (
    "SELECT r.id, u.name AS user_name, s.file_name, r.mode, r.gpu_type, r.site, r.job_id, r.state, "
    "r.passed, r.score, r.error, r.result "
    "FROM runs r JOIN submissions s ON s.id = r.submission_id JOIN users u ON u.id = s.user_id"
)


def _run_record(row: asyncpg.Record) -> RunRecord:
    return RunRecord(
        str(row["id"]),
        row["user_name"],
        row["file_name"],
        row["mode"],
        row["gpu_type"],
        row["site"],
        row["job_id"],
        row["state"],
        row["passed"],
        row["score"],
        row["error"],
        row["result"],
    )
