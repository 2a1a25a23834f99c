"""Counting runs: a queued run's place in line, a user's standing on a leaderboard, totals for admins."""

from __future__ import annotations

import uuid

from gateway.store.base import StoreBase, retried
from gateway.store.ranking import BEST_PER_USER_SQL
from gateway.store.records import GatewayStats, SiteStats, Standing

# A run waiting for a worker (unfinished, unclaimed) is behind every such run before it in the order workers
# claim them (turn, user_place, queued_at, id: gateway/store/queue.py), read from the partial index
# runs_turns. A run queued later may go ahead of it (a user with fewer runs takes an earlier turn).
QUEUE_POSITION_SQL = (
    "SELECT 1 + (SELECT count(*) FROM runs o WHERE o.finished_at IS NULL AND o.worker IS NULL "
    "  AND (o.turn, o.user_place, o.queued_at, o.id) < (r.turn, r.user_place, r.queued_at, r.id)) "
    "  AS position "
    "FROM runs r WHERE r.id = $1 AND r.finished_at IS NULL AND r.worker IS NULL"
)

# One user's place among every user's best ranked run (the ranking's order: score, then the earlier
# submission, then the run id).
STANDING_SQL = (  # composed of constants only
    "SELECT ranked.rank, ranked.total, ranked.score, ranked.id FROM ("  # noqa: S608
    "  SELECT user_id, score, id, row_number() OVER (ORDER BY score, queued_at, id) AS rank, "
    f"    count(*) OVER () AS total FROM ({BEST_PER_USER_SQL}) best) ranked "
    "JOIN users u ON u.id = ranked.user_id WHERE u.name = $3"
)

SITE_STATS_SQL = (
    "SELECT site, count(*) AS runs, count(*) FILTER (WHERE passed IS NOT TRUE) AS failed, "
    "  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - queued_at)) "
    "    AS median_wait_s, "
    "  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - queued_at)) "
    "    AS median_total_s "
    "FROM runs WHERE finished_at >= now() - make_interval(secs => $1) AND site IS NOT NULL "
    "GROUP BY site ORDER BY site"
)


class StatsStore(StoreBase):
    @retried
    async def queue_position(self, run_id: str) -> int | None:
        """1 for the next run a worker claims; None once a worker holds the run (or it finished)."""
        async with self._conn() as conn:
            position: int | None = await conn.fetchval(QUEUE_POSITION_SQL, uuid.UUID(run_id))
        return position

    @retried
    async def standing(self, leaderboard_id: int, gpu_type: str, user: str) -> Standing | None:
        """A user's rank on one GPU type of a leaderboard (None: nothing of theirs is ranked there)."""
        async with self._conn() as conn:
            row = await conn.fetchrow(STANDING_SQL, leaderboard_id, gpu_type, user)
        return Standing(row["rank"], row["total"], row["score"], str(row["id"])) if row else None

    @retried
    async def runs_by_state(self) -> dict[str, int]:
        """Every run recorded, counted by state (finished ones included), for metrics."""
        async with self._conn() as conn:
            rows = await conn.fetch("SELECT state, count(*) AS n FROM runs GROUP BY state ORDER BY state")
        return {row["state"]: row["n"] for row in rows}

    @retried
    async def unfinished_by_state(self) -> dict[str, int]:
        """Unfinished runs counted by state: read through the partial index on unfinished runs, so its
        cost follows the queue, not the history (metrics read it at every scrape)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT state, count(*) AS n FROM runs WHERE finished_at IS NULL "
                "GROUP BY state ORDER BY state"
            )
        return {row["state"]: row["n"] for row in rows}

    @retried
    async def stats(self, window_s: int = 86_400) -> GatewayStats:
        """Totals, unfinished runs by state, and per-site numbers for runs finished in the last
        ``window_s`` seconds."""
        async with self._conn() as conn, conn.transaction(readonly=True):
            totals = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM users) AS users, "
                "(SELECT count(*) FROM leaderboards) AS leaderboards, "
                "(SELECT count(*) FROM submissions) AS submissions, (SELECT count(*) FROM runs) AS runs, "
                "(SELECT count(*) FROM runs WHERE queued_at >= now() - make_interval(secs => $1)) "
                "  AS recent_runs",
                window_s,
            )
            unfinished = await conn.fetch(
                "SELECT state, count(*) AS n FROM runs WHERE finished_at IS NULL "
                "GROUP BY state ORDER BY state"
            )
            sites = await conn.fetch(SITE_STATS_SQL, window_s)
        assert totals is not None  # a row of subqueries always comes back
        return GatewayStats(
            users=totals["users"],
            leaderboards=totals["leaderboards"],
            submissions=totals["submissions"],
            runs=totals["runs"],
            recent_runs=totals["recent_runs"],
            window_s=window_s,
            unfinished={row["state"]: row["n"] for row in unfinished},
            sites=[
                SiteStats(r["site"], r["runs"], r["failed"], r["median_wait_s"], r["median_total_s"])
                for r in sites
            ],
        )
