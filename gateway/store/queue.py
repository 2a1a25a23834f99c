"""The durable queue: claims with heartbeats, routes and states, and each run's record.

A run is claimed with ``FOR UPDATE SKIP LOCKED`` by one worker at a time; its claim lives while the
worker's heartbeat is fresh, and a run whose heartbeat went stale may be claimed again (taken over).
A run is recorded once: ``record_result`` writes only while ``finished_at IS NULL``.

Claims take turns across users. A run's ``turn`` and ``user_place`` are fixed when it is queued
(gateway/store/submissions.py). Workers claim by (turn, user_place, queued_at, id), so one user's 500 queued
runs and another's one alternate, and a user with nothing queued goes next; the order is read from one
index, as cheap as oldest-first.
"""

from __future__ import annotations

import uuid
from typing import Any

from gateway.store.base import retried
from gateway.store.changes import board_changed, notify_change
from gateway.store.records import ClaimedRun
from gateway.store.submissions import SubmissionsStore, insert_event


def _ids(run_ids: list[str] | None) -> list[uuid.UUID] | None:
    return None if run_ids is None else [uuid.UUID(r) for r in run_ids]


# The claim: lock up to $3 runs no live worker holds, in claim order, and mark them this worker's ($1); a
# stale claim ($2 seconds without a heartbeat) is taken over, never by the worker that holds it; $4: only
# these runs (a submitter draining its own), or NULL. bench/claim_fairness.py times it against
# oldest-first (ORDER BY queued_at, id).
CLAIM_SQL = (
    "WITH picked AS ("
    "  SELECT id FROM runs WHERE finished_at IS NULL "
    "  AND (worker IS NULL "
    "       OR (heartbeat_at < now() - make_interval(secs => $2) AND worker <> $1)) "
    "  AND ($4::uuid[] IS NULL OR id = ANY($4)) "
    "  ORDER BY turn, user_place, queued_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
    "UPDATE runs r SET worker = $1, heartbeat_at = now(), claims = r.claims + 1 "
    "FROM picked WHERE r.id = picked.id RETURNING r.id"
)


class QueueStore(SubmissionsStore):
    async def claim(
        self, worker: str, limit: int, stale_after_s: float, run_ids: list[str] | None = None
    ) -> list[ClaimedRun]:
        """Claim up to ``limit`` unfinished runs that no live worker holds, in turns across users (the
        lowest turn first; in a turn, the run with fewer of its user's runs ahead, then the older). A
        worker's own stale claims are not claimed again by it: it is still following them; its heartbeat
        renews them.

        Not retried on its own: a claim whose acknowledgement was lost is left to go stale (its
        heartbeat is never sent) and is taken over, so no run is held by a worker that does not know it."""
        async with self._conn() as conn, conn.transaction():
            rows = await conn.fetch(CLAIM_SQL, worker, stale_after_s, limit, _ids(run_ids))
            if not rows:
                return []
            details = await conn.fetch(
                "SELECT r.id, r.submission_id, r.mode, r.secret, r.gpu_type, r.requested_site, r.site, "
                "  r.partition, r.job_id, r.attempt, r.claims, r.result_key, u.name AS user_name, "
                "  s.file_name, c.code, l.name AS leaderboard, l.task, l.secret_seed "
                "FROM runs r JOIN submissions s ON s.id = r.submission_id JOIN users u ON u.id = s.user_id "
                "JOIN code_blobs c ON c.sha256 = s.code_sha256 "
                "LEFT JOIN leaderboards l ON l.id = s.leaderboard_id "
                "WHERE r.id = ANY($1) ORDER BY r.turn, r.user_place, r.queued_at, r.id",
                [row["id"] for row in rows],
            )
        return [
            ClaimedRun(
                str(d["id"]),
                d["submission_id"],
                d["mode"],
                d["secret"],
                d["gpu_type"],
                d["requested_site"],
                d["site"],
                d["partition"],
                d["job_id"],
                d["attempt"],
                d["claims"],
                d["result_key"],
                d["user_name"],
                d["file_name"],
                d["code"],
                d["leaderboard"],
                d["task"],
                d["secret_seed"] if d["secret"] else None,
            )
            for d in details
        ]

    @retried
    async def heartbeat(self, worker: str, run_ids: list[str]) -> tuple[set[str], set[str]]:
        """Renew this worker's claims on ``run_ids``; return (runs it lost: another worker holds them
        now, runs whose cancel was requested). A run that finished meanwhile is neither."""
        if not run_ids:
            return set(), set()
        async with self._conn() as conn:
            renewed = await conn.fetch(
                # locked in id order, as record_result locks a submission's runs: two transactions that
                # lock several runs lock them in the same order, so they never deadlock
                "WITH mine AS (SELECT id FROM runs WHERE worker = $1 AND id = ANY($2) "
                "  AND finished_at IS NULL ORDER BY id FOR UPDATE) "
                "UPDATE runs r SET heartbeat_at = now() FROM mine WHERE r.id = mine.id "
                "RETURNING r.id, r.cancel_requested",
                worker,
                _ids(run_ids),
            )
            missing = set(run_ids) - {str(r["id"]) for r in renewed}
            # a statement of its own, so a run recorded while the update waited for its row reads finished
            lost = (
                await conn.fetch(
                    "SELECT id FROM runs WHERE id = ANY($1) AND finished_at IS NULL", _ids(sorted(missing))
                )
                if missing
                else []
            )
        return {str(r["id"]) for r in lost}, {str(r["id"]) for r in renewed if r["cancel_requested"]}

    @retried
    async def queue_depth(self) -> dict[str, int]:
        """Unfinished runs by state (QUEUED: waiting for a worker)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT state, count(*) AS n FROM runs WHERE finished_at IS NULL GROUP BY state"
            )
        return {r["state"]: r["n"] for r in rows}

    @retried
    async def release(self, worker: str, run_ids: list[str]) -> None:
        """Give claims back (a worker stopping cleanly): another worker takes them over at once."""
        async with self._conn() as conn:
            await conn.execute(
                "WITH mine AS (SELECT id FROM runs WHERE worker = $1 AND id = ANY($2) "
                "  AND finished_at IS NULL ORDER BY id FOR UPDATE) "  # in id order, as heartbeat
                "UPDATE runs r SET worker = NULL, heartbeat_at = NULL FROM mine WHERE r.id = mine.id",
                worker,
                _ids(run_ids),
            )

    @retried
    async def assign_route(
        self, run_id: str, worker: str, site: str, partition: str | None, backend: str, reason: str
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE runs SET site = $3, partition = $4, backend = $5, route_reason = $6 "
                "WHERE id = $1 AND worker = $2 AND finished_at IS NULL",
                uuid.UUID(run_id),
                worker,
                site,
                partition,
                backend,
                reason,
            )

    @retried
    async def mark_submitted(self, run_id: str, job_id: str, state: str, attempt: int = 1) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE runs SET job_id = $2, state = $3, attempt = $4 WHERE id = $1 AND finished_at IS NULL",
                uuid.UUID(run_id),
                job_id,
                state,
                attempt,
            )

    @retried
    async def update_state(self, run_id: str, state: str, *, started: bool = False) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE runs SET state = $2, "
                "started_at = CASE WHEN $3 THEN COALESCE(started_at, now()) ELSE started_at END "
                "WHERE id = $1 AND finished_at IS NULL",
                uuid.UUID(run_id),
                state,
                started,
            )

    @retried
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
        message: str,
    ) -> bool:
        """Record a run's end once (True if this call did), with its finished event; a public
        leaderboard run becomes ranked when it and its secret rerun have both passed, before its
        leaderboard's deadline, and its submission was not deleted."""
        rid = uuid.UUID(run_id)
        async with self._conn() as conn, conn.transaction():
            # lock the submission's runs in one order: recorders of a run and its rerun see each other
            submission_id = await conn.fetchval("SELECT submission_id FROM runs WHERE id = $1", rid)
            if submission_id is None:
                return False  # deleted with its leaderboard
            await conn.execute(
                "SELECT 1 FROM runs WHERE submission_id = $1 ORDER BY id FOR UPDATE", submission_id
            )
            done = await conn.execute(
                # the key goes with the run's end: a finished run never runs again, and its result is
                # verified (or never will be) by now
                "UPDATE runs SET state = $2, passed = $3, score = $4, result = $5, system_info = $6, "
                "error = $7, finished_at = now(), worker = NULL, heartbeat_at = NULL, result_key = NULL "
                "WHERE id = $1 AND finished_at IS NULL",
                rid,
                state,
                passed,
                score,
                result,
                system_info,
                error,
            )
            if not done.endswith(" 1"):
                return False
            await insert_event(conn, rid, "finished", state, message)
            ranked = await conn.fetchval(
                "WITH marked AS (UPDATE runs p SET ranked = true "
                "WHERE p.submission_id = $1 AND p.mode = 'leaderboard' "
                "AND NOT p.secret AND p.passed AND p.score IS NOT NULL AND NOT p.ranked "
                "AND EXISTS (SELECT 1 FROM runs s WHERE s.submission_id = p.submission_id "
                "            AND s.gpu_type IS NOT DISTINCT FROM p.gpu_type AND s.secret AND s.passed) "
                # the ranking freezes at the deadline: a result recorded then or later never ranks; nor
                # does a deleted submission's (docs/competitions.md)
                "AND EXISTS (SELECT 1 FROM submissions d JOIN leaderboards l ON l.id = d.leaderboard_id "
                "            WHERE d.id = p.submission_id AND d.deleted_at IS NULL "
                "            AND (l.deadline IS NULL OR now() < l.deadline)) "
                "RETURNING p.leaderboard_id) SELECT min(leaderboard_id) FROM marked",
                submission_id,
            )
            if ranked is not None:  # the API processes' cached rankings of that board are out of date
                await notify_change(conn, board_changed(ranked))
            return True

    @retried
    async def unfinished_among(self, run_ids: list[str]) -> set[str]:
        """Those of ``run_ids`` that are queued or running (a sweep of a site's work folder keeps their
        bundles; every other one is finished or unknown here)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id FROM runs WHERE id = ANY($1) AND finished_at IS NULL", _ids(run_ids)
            )
        return {str(r["id"]) for r in rows}

    @retried
    async def keys_held(self, run_ids: list[str]) -> set[str]:
        """Those of ``run_ids`` whose result key is still stored (only unfinished runs hold one)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id FROM runs WHERE id = ANY($1) AND result_key IS NOT NULL", _ids(run_ids)
            )
        return {str(r["id"]) for r in rows}

    @retried
    async def request_cancel(self, run_id: str) -> str:
        """Ask for a run to be cancelled: 'queued' (no worker held it: recorded cancelled now), 'requested'
        (its worker cancels the job), 'finished' (too late), or 'unknown'."""
        rid = uuid.UUID(run_id)
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT finished_at IS NOT NULL AS finished, job_id IS NULL AND worker IS NULL AS idle "
                "FROM runs WHERE id = $1 FOR UPDATE",
                rid,
            )
            if row is None:
                return "unknown"
            if row["finished"]:
                return "finished"
            if row["idle"]:
                await conn.execute(
                    "UPDATE runs SET state = 'CANCELLED', passed = false, error = 'cancelled before it "
                    "started', finished_at = now(), result_key = NULL WHERE id = $1",
                    rid,
                )
                await insert_event(conn, rid, "finished", "CANCELLED", "cancelled before it started")
                return "queued"
            await conn.execute("UPDATE runs SET cancel_requested = true WHERE id = $1", rid)
            await conn.execute("SELECT pg_notify('gateway_cancel', $1)", run_id)
            return "requested"
