"""Reading runs back: rankings, personal history, recent runs, one run, lists of runs."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from gateway.store.base import StoreBase, retried
from gateway.store.records import RankedEntry, RunRecord, ScorePoint

RUN_SELECT = (
    "SELECT r.id, r.submission_id, COALESCE(u.display_name, u.name) AS user_name, s.file_name, "
    "l.name AS leaderboard, r.mode, "
    "r.secret, r.gpu_type, r.site, r.partition, r.job_id, r.attempt, r.state, r.passed, r.score, r.error, "
    "r.result, r.queued_at, r.started_at, r.finished_at, r.worker, r.claims, r.ranked, r.backend, "
    "r.route_reason, u.name AS account, s.public_id, COALESCE(l.visibility = 'hidden', false) AS hidden, "
    "COALESCE(r.finished_at >= l.deadline, false) AS late, s.deleted_at IS NOT NULL AS deleted, "
    "r.pool_id, r.gpu_seconds "
    "FROM runs r JOIN submissions s ON s.id = r.submission_id JOIN users u ON u.id = r.user_id "
    "LEFT JOIN leaderboards l ON l.id = r.leaderboard_id"
)

# Each user's best ranked run on one leaderboard and GPU type, from the partial index runs_ranking alone
# (an index-only scan in (leaderboard, GPU, user, score, time) order: DISTINCT ON keeps each user's first),
# then the top $3 by score, ties to the earlier submission (and the run id, to be total); only those few are
# joined to their run, user and submission. Joining before the cut would look up every ranked user's rows.
# A run is marked ranked when its result is recorded before its board's deadline (and unmarked when its
# submission is deleted: gateway/store/queue.py, submissions.py), so the ranking after the deadline is the
# ranking at it, read from the same index.
BEST_PER_USER_SQL = (
    "SELECT DISTINCT ON (user_id) user_id, score, queued_at, id FROM runs "
    "WHERE leaderboard_id = $1 AND gpu_type = $2 AND ranked ORDER BY user_id, score, queued_at"
)
RANKING_SQL = (  # composed of constants only
    "SELECT top.*, COALESCE(u.display_name, u.name) AS user_name, u.name AS account, s.file_name, r.site, "  # noqa: S608
    "s.public_id, r.finished_at FROM ("
    f"  SELECT * FROM ({BEST_PER_USER_SQL}) best "
    "  ORDER BY score, queued_at, id LIMIT $3) top "
    "JOIN runs r ON r.id = top.id JOIN users u ON u.id = top.user_id "
    "JOIN submissions s ON s.id = r.submission_id "
    "ORDER BY top.score, top.queued_at, top.id"
)

# One account's submissions, a page at a time (newest first, from the index submissions_user_recent), each
# with its runs; $2: the public id of the account's own submission the page starts after; $4: hidden
# boards' too (admins)
OWN_SUBMISSIONS_SQL = (  # composed of constants only
    "WITH me AS (SELECT id FROM users WHERE name = $1), "  # noqa: S608
    "page AS (SELECT s.id FROM submissions s LEFT JOIN leaderboards l ON l.id = s.leaderboard_id "
    "  WHERE s.user_id = (SELECT id FROM me) AND s.deleted_at IS NULL "
    "  AND ($4 OR COALESCE(l.visibility <> 'hidden', true)) "
    "  AND ($2::text IS NULL OR (s.created_at, s.id) < (SELECT created_at, id FROM submissions "
    "    WHERE public_id = $2 AND user_id = (SELECT id FROM me))) "
    "  ORDER BY s.created_at DESC, s.id DESC LIMIT $3) "
    f"{RUN_SELECT} WHERE r.submission_id IN (SELECT id FROM page) "
    "ORDER BY s.created_at DESC, s.id DESC, r.secret, r.gpu_type"
)


def run_record(row: asyncpg.Record) -> RunRecord:
    return RunRecord(
        str(row["id"]),
        row["submission_id"],
        row["user_name"],
        row["file_name"],
        row["leaderboard"],
        row["mode"],
        row["secret"],
        row["gpu_type"],
        row["site"],
        row["partition"],
        row["job_id"],
        row["attempt"],
        row["state"],
        row["passed"],
        row["score"],
        row["error"],
        row["result"],
        row["queued_at"],
        row["started_at"],
        row["finished_at"],
        row["worker"],
        row["claims"],
        row["ranked"],
        row["backend"],
        row["route_reason"],
        row["account"],
        row["public_id"],
        row["hidden"],
        row["late"],
        row["deleted"],
        row["pool_id"],
        row["gpu_seconds"],
    )


class RankingStore(StoreBase):
    @retried
    async def ranking(self, leaderboard_id: int, gpu_type: str, limit: int = 100) -> list[RankedEntry]:
        """The ranking on one GPU type: each user's best public score whose secret rerun also passed."""
        async with self._conn() as conn:
            rows = await conn.fetch(RANKING_SQL, leaderboard_id, gpu_type, limit)
        return [
            RankedEntry(
                rank,
                row["user_name"],
                gpu_type,
                row["score"],
                str(row["id"]),
                row["file_name"],
                row["site"],
                row["queued_at"],
                row["public_id"],
                row["account"],
                row["finished_at"],
            )
            for rank, row in enumerate(rows, start=1)
        ]

    @retried
    async def score_timeline(self, leaderboard_id: int, gpu_type: str, limit: int = 2000) -> list[ScorePoint]:
        """The ranked runs on one GPU type, oldest first (the latest ``limit`` of them), from the ranking's
        index: every user's scores over time."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM (SELECT r.queued_at, COALESCE(u.display_name, u.name) AS user_name, "
                "  r.score, r.id FROM runs r "
                "  JOIN users u ON u.id = r.user_id "
                "  WHERE r.leaderboard_id = $1 AND r.gpu_type = $2 AND r.ranked "
                "  ORDER BY r.queued_at DESC LIMIT $3) latest ORDER BY queued_at",
                leaderboard_id,
                gpu_type,
                limit,
            )
        return [ScorePoint(r["queued_at"], r["user_name"], r["score"], str(r["id"])) for r in rows]

    @retried
    async def recent_runs(self, leaderboard_id: int, limit: int = 20) -> list[RunRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"{RUN_SELECT} WHERE r.leaderboard_id = $1 AND NOT r.secret AND s.deleted_at IS NULL "
                "ORDER BY r.queued_at DESC LIMIT $2",
                leaderboard_id,
                limit,
            )
        return [run_record(row) for row in rows]

    @retried
    async def history(self, user: str, leaderboard_id: int | None = None, limit: int = 50) -> list[RunRecord]:
        """A user's own runs, newest first (secret reruns included: their pass/fail is theirs to see)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"{RUN_SELECT} WHERE u.name = $1 AND ($2::bigint IS NULL OR r.leaderboard_id = $2) "
                "ORDER BY r.queued_at DESC, r.secret LIMIT $3",
                user,
                leaderboard_id,
                limit,
            )
        return [run_record(row) for row in rows]

    @retried
    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(f"{RUN_SELECT} WHERE r.id = $1", uuid.UUID(run_id))
        return run_record(row) if row is not None else None

    @retried
    async def find_runs(self, prefix: str) -> list[str]:
        """Run ids starting with ``prefix`` (users type the first 8 characters shown in tables)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id FROM runs WHERE id::text LIKE $1 || '%' ORDER BY queued_at DESC LIMIT 5",
                prefix.lower(),
            )
        return [str(r["id"]) for r in rows]

    @retried
    async def list_runs(
        self,
        *,
        leaderboard: str | None = None,
        user: str | None = None,
        unfinished: bool = False,
        site: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"{RUN_SELECT} WHERE ($1::text IS NULL OR l.name = $1) AND ($2::text IS NULL OR u.name = $2) "
                "AND (NOT $3 OR r.finished_at IS NULL) AND ($4::text IS NULL OR r.site = $4) "
                "AND ($5::timestamptz IS NULL OR r.queued_at >= $5) "
                "ORDER BY r.queued_at DESC LIMIT $6",
                leaderboard,
                user,
                unfinished,
                site,
                since,
                limit,
            )
        return [run_record(row) for row in rows]

    @retried
    async def user_submissions(
        self, account: str, *, before: str | None = None, limit: int = 20, hidden: bool = False
    ) -> list[list[RunRecord]]:
        """One account's submissions, newest first, each as its runs (public first): at most ``limit``,
        those older than the account's own submission ``before`` (a public id; one that is not theirs
        gives an empty page); boards that are hidden only when ``hidden``."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                OWN_SUBMISSIONS_SQL,
                account,
                before,
                limit,
                hidden,
            )
        grouped: dict[int, list[RunRecord]] = {}
        for row in rows:
            record = run_record(row)
            grouped.setdefault(record.submission_id, []).append(record)
        return list(grouped.values())

    @retried
    async def submission_runs(self, submission: int | str) -> list[RunRecord]:
        """A submission's runs, by its id (a number) or its public id (a string)."""
        where = "r.submission_id = $1" if isinstance(submission, int) else "s.public_id = $1"
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"{RUN_SELECT} WHERE {where} ORDER BY r.secret, r.gpu_type",
                submission,
            )
        return [run_record(row) for row in rows]
