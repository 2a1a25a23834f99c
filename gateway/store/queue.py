"""The durable queue: submissions with their runs, claims with heartbeats, and each run's record.

A run is claimed with ``FOR UPDATE SKIP LOCKED`` by one worker at a time; its claim lives while the
worker's heartbeat is fresh, and a run whose heartbeat went stale may be claimed again (taken over).
A run is recorded once: ``record_result`` writes only while ``finished_at IS NULL``.

Claims take turns across users. A run's ``turn`` is fixed when it is queued: one after its user's last
unfinished run, and never before the turn workers are serving (the lowest turn still waiting, else the
highest one running); ``user_place`` is its place among its user's unfinished runs then. Workers claim by
(turn, user_place, queued_at, id), so one user's 500 queued runs and another's one alternate, and a user
with nothing queued goes next; the order is read from one index, as cheap as oldest-first.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from typing import Any

from gateway.errors import RefusedError, UserError
from gateway.store.base import StoreBase, retried
from gateway.store.records import ClaimedRun, NewRun

EVENTS_PER_RUN = 500  # state and progress events kept per run (the finished event always goes in)
PER_MINUTE_S = 60.0

# What a user's submission is checked and queued against, in one round trip ($1: the user, $2: the window of
# the per-minute limit in seconds, $3: that limit): the user's unfinished runs and the last one's turn; the
# turn workers are serving (the lowest turn still waiting for a worker; with none waiting, the highest turn
# running, so turns keep rising; with nothing unfinished, 0); the user's submissions in the window and when
# the $3-th newest leaves it (as a leaderboard's limit: the oldest, unless the limit was lowered).
USER_QUEUE_SQL = (
    "SELECT mine.unfinished, mine.last_turn, recent.used, recent.wait_s, COALESCE("
    "  (SELECT turn FROM runs WHERE finished_at IS NULL AND worker IS NULL ORDER BY turn LIMIT 1), "
    "  (SELECT max(turn) FROM runs WHERE finished_at IS NULL), 0) AS head "
    "FROM (SELECT count(*) AS unfinished, max(turn) AS last_turn FROM runs "
    "      WHERE user_id = $1 AND finished_at IS NULL) mine, "
    "     (SELECT count(*) AS used, extract(epoch FROM "
    "        (array_agg(created_at ORDER BY created_at DESC))[$3] + make_interval(secs => $2) - now()) "
    "        AS wait_s "
    "      FROM submissions WHERE user_id = $1 AND created_at > now() - make_interval(secs => $2)) recent"
)


def _ids(run_ids: list[str] | None) -> list[uuid.UUID] | None:
    return None if run_ids is None else [uuid.UUID(r) for r in run_ids]


async def insert_event(
    conn: Any, run_id: uuid.UUID, kind: str, state: str, message: str, data: Mapping[str, Any] | None = None
) -> None:
    """Add one event (capped per run, except the finished one), with its structured fields (``data``) if it
    has any; its trigger NOTIFYs followers."""
    await conn.execute(
        "INSERT INTO run_events (run_id, kind, state, message, data) SELECT $1, $2, $3, $4, $6::jsonb "
        "WHERE $2 = 'finished' OR (SELECT count(*) FROM run_events WHERE run_id = $1) < $5",
        run_id,
        kind,
        state,
        message[:4000],
        EVENTS_PER_RUN,
        None if data is None else dict(data),
    )


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


class QueueStore(StoreBase):
    @retried
    async def create_submission(
        self,
        user: str,
        leaderboard_id: int | None,
        task_name: str,
        file_name: str,
        code: str,
        mode: str,
        runs: list[NewRun],
        *,
        public_id: str | None = None,
        max_unfinished: int | None = None,
        per_minute: int | None = None,
    ) -> int:
        """Store the code (deduplicated by sha256), the submission and its queued runs in one transaction,
        after checking that the user is not banned, the leaderboard is open and its rate limit allows it,
        that the user made fewer than ``per_minute`` submissions in the last minute (every leaderboard and
        ad-hoc runs together; None: no such limit), and that the user's unfinished runs with these stay
        within the leaderboard's cap, else ``max_unfinished`` (None: no cap).

        Safe to retry: the run ids are chosen by the caller, so a retry after a commit whose
        acknowledgement was lost finds the submission instead of adding a second one."""
        digest = hashlib.sha256(code.encode()).hexdigest()
        async with self._conn() as conn, conn.transaction():
            existing = await conn.fetchval(
                "SELECT submission_id FROM runs WHERE id = $1", uuid.UUID(runs[0].run_id)
            )
            if existing is not None:
                return int(existing)
            # the upsert locks the user's row until commit: their concurrent submissions are serialised,
            # so a rate limit holds exactly
            user_row: Any = await conn.fetchrow(
                "INSERT INTO users (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
                "RETURNING id, banned",
                user,
            )
            if user_row["banned"]:
                raise RefusedError(
                    f"{user} is banned from submitting; ask the organisers if you think this is a mistake",
                    "banned",
                )
            cap, where = max_unfinished, ""
            if leaderboard_id is not None:
                board_name, board_cap = await self._check_open(conn, user_row["id"], leaderboard_id, mode)
                if board_cap is not None:
                    cap, where = board_cap, f" on {board_name}"
            mine: Any = await conn.fetchrow(USER_QUEUE_SQL, user_row["id"], PER_MINUTE_S, per_minute or 1)
            if per_minute is not None and mine["used"] >= per_minute:
                raise _rate_limited(
                    f"{per_minute} submission(s) per minute across all leaderboards", mine["wait_s"]
                )
            if cap is not None and mine["unfinished"] + len(runs) > cap:
                raise RefusedError(
                    f"too many unfinished runs: you have {mine['unfinished']} queued or running and this "
                    f"submission adds {len(runs)}, but at most {cap} may be unfinished at once{where}; "
                    "wait for some to finish, or cancel some you no longer need",
                    "too_many_unfinished",
                )
            # users take turns: the first run goes one after the user's last unfinished run, and never
            # before the turn workers are serving (not under any lock: another user's submission at the
            # same moment may get the same turn; the tie goes to the lower place, then the older)
            head: int = mine["head"]
            turn = head if mine["last_turn"] is None else max(head, mine["last_turn"] + 1)
            await conn.execute(
                "INSERT INTO code_blobs (sha256, code) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
                digest,
                code,
            )
            submission_id: int = await conn.fetchval(
                "INSERT INTO submissions (user_id, leaderboard_id, task_name, file_name, code_sha256, mode, "
                "public_id) VALUES ($1, $2, $3, $4, $5, $6, "
                "COALESCE($7, replace(gen_random_uuid()::text, '-', ''))) RETURNING id",
                user_row["id"],
                leaderboard_id,
                task_name,
                file_name,
                digest,
                mode,
                public_id,
            )
            await conn.executemany(
                "INSERT INTO runs (id, submission_id, leaderboard_id, user_id, mode, secret, gpu_type, "
                "requested_site, state, result_key, turn, user_place) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'QUEUED', $9, $10, $11)",
                [
                    (
                        uuid.UUID(r.run_id),
                        submission_id,
                        leaderboard_id,
                        user_row["id"],
                        r.mode,
                        r.secret,
                        r.gpu_type,
                        r.requested_site,
                        r.result_key,
                        turn + n,
                        mine["unfinished"] + 1 + n,
                    )
                    for n, r in enumerate(runs)
                ],
            )
            for r in runs:
                await insert_event(conn, uuid.UUID(r.run_id), "state", "QUEUED", "queued")
            return submission_id

    async def _check_open(self, conn: Any, user_id: int, board_id: int, mode: str) -> tuple[str, int | None]:
        """Refuse a submission to a closed leaderboard or over its rate limit; return the leaderboard's name
        and its cap on each user's unfinished runs (None: the gateway's default)."""
        board: Any = await conn.fetchrow(
            "SELECT name, deadline, deadline <= now() AS closed, max_unfinished_per_user "
            "FROM leaderboards WHERE id = $1",
            board_id,
        )
        if board is None:
            raise UserError("that leaderboard no longer exists (it was deleted)")
        if board["closed"]:
            raise RefusedError(
                f"leaderboard {board['name']} closed at {board['deadline']:%Y-%m-%d %H:%M %Z}; "
                "it takes no more submissions",
                "closed",
            )
        limit = await conn.fetchrow(
            "SELECT max_submissions, per_seconds FROM rate_limits WHERE leaderboard_id = $1 AND mode = $2",
            board_id,
            mode,
        )
        if limit is None:
            return board["name"], board["max_unfinished_per_user"]
        # a slot frees when the max_submissions-th newest submission in the window leaves it (the oldest
        # one, unless the limit was lowered while more were in the window)
        window: Any = await conn.fetchrow(
            "SELECT count(*) AS used, extract(epoch FROM "
            "  (array_agg(created_at ORDER BY created_at DESC))[$5] + make_interval(secs => $4) - now()) "
            "  AS wait_s "
            "FROM submissions WHERE user_id = $1 AND leaderboard_id = $2 AND mode = $3 "
            "AND created_at > now() - make_interval(secs => $4)",
            user_id,
            board_id,
            mode,
            float(limit["per_seconds"]),
            limit["max_submissions"],
        )
        if window["used"] >= limit["max_submissions"]:
            raise _rate_limited(
                f"{limit['max_submissions']} {mode} submission(s) per {_duration(limit['per_seconds'])} "
                f"on {board['name']}",
                window["wait_s"],
            )
        return board["name"], board["max_unfinished_per_user"]

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
        leaderboard run becomes ranked when it and its secret rerun have both passed."""
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
            await conn.execute(
                "UPDATE runs p SET ranked = true WHERE p.submission_id = $1 AND p.mode = 'leaderboard' "
                "AND NOT p.secret AND p.passed AND p.score IS NOT NULL AND NOT p.ranked "
                "AND EXISTS (SELECT 1 FROM runs s WHERE s.submission_id = p.submission_id "
                "            AND s.gpu_type IS NOT DISTINCT FROM p.gpu_type AND s.secret AND s.passed)",
                submission_id,
            )
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


def _rate_limited(limit: str, wait_s: Any) -> RefusedError:
    """The refusal of a submission over ``limit`` ("5 test submission(s) per 1 h on b"), saying when a
    slot frees (at least a second from now)."""
    wait = max(1.0, float(wait_s))
    return RefusedError(
        f"rate limited: {limit}; try again in {_duration(wait)}", "rate_limited", retry_after_s=wait
    )


def _duration(seconds: float) -> str:
    """Whole hours, minutes or seconds, rounded up: a user told to wait that long is never early."""
    whole = math.ceil(seconds)
    for unit, size in (("h", 3600), ("min", 60)):
        if (whole >= size and whole % size == 0) or whole >= 10 * size:
            return f"{math.ceil(whole / size)} {unit}"
    return f"{whole} s"
