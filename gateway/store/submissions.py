"""Submissions: a user's code and its queued runs, stored in one transaction after the checks that may
refuse it (banned, leaderboard closed, rate limits, the cap on unfinished runs); and run events, which
both the queue and its records write.

Claims take turns across users (gateway/store/queue.py claims by turn). A run's ``turn`` is fixed when it is
queued: one after its user's last unfinished run, and never before the turn workers are serving (the lowest
turn still waiting, else the highest one running); ``user_place`` is its place among its user's unfinished
runs then.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from typing import Any

from gateway.core.errors import RefusedError, UserError
from gateway.store.base import StoreBase, retried
from gateway.store.changes import board_changed, notify_change
from gateway.store.records import DeletedSubmission, NewRun, SubmissionCode

EVENTS_PER_RUN = 500  # state and progress events kept per run (the finished event always goes in)
PER_MINUTE_S = 60.0

# A submission is stored in three statements in one transaction (each a round trip; the user's row stays
# locked from the first to the commit, so their concurrent submissions are serialised and every limit holds
# exactly). 1: the upsert that locks the user's row, and whether these runs exist already (a retry).
LOCK_USER_SQL = (
    "INSERT INTO users (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
    "RETURNING id, banned, (SELECT submission_id FROM runs WHERE id = $2) AS existing"
)
# 2: what the submission is checked and queued against, read after the lock (a statement's snapshot is taken
# when it starts: one read with the lock would miss a submission committed while it waited). $1 the user,
# $2 the window of the per-minute limit in seconds, $3 that limit, $4 the leaderboard (NULL: none), $5 the
# mode. The user's unfinished runs and the last one's turn; the turn workers are serving (the lowest turn
# still waiting for a worker; with none waiting, the highest turn running, so turns keep rising; with nothing
# unfinished, 0); the user's submissions in the window and when the $3-th newest leaves it; the leaderboard
# (closed at its deadline, its cap on unfinished runs) and its rate limit for the mode with the user's
# submissions in that window and when a slot frees (the max_submissions-th newest one leaving it: the
# oldest, unless the limit was lowered while more were in the window).
CHECKS_SQL = (
    "SELECT mine.unfinished, mine.last_turn, recent.used, recent.wait_s, COALESCE("
    "  (SELECT turn FROM runs WHERE finished_at IS NULL AND worker IS NULL ORDER BY turn LIMIT 1), "
    "  (SELECT max(turn) FROM runs WHERE finished_at IS NULL), 0) AS head, "
    "  l.name AS board, l.deadline, l.deadline <= now() AS closed, l.max_unfinished_per_user, "
    "  lim.max_submissions, lim.per_seconds, win.used AS board_used, win.wait_s AS board_wait_s "
    "FROM (SELECT count(*) AS unfinished, max(turn) AS last_turn FROM runs "
    "      WHERE user_id = $1 AND finished_at IS NULL) mine "
    "CROSS JOIN (SELECT count(*) AS used, extract(epoch FROM "
    "        (array_agg(created_at ORDER BY created_at DESC))[$3] + make_interval(secs => $2) - now()) "
    "        AS wait_s "
    "      FROM submissions WHERE user_id = $1 AND created_at > now() - make_interval(secs => $2)) recent "
    "LEFT JOIN leaderboards l ON l.id = $4 "
    "LEFT JOIN rate_limits lim ON lim.leaderboard_id = l.id AND lim.mode = $5 "
    "LEFT JOIN LATERAL (SELECT count(*) AS used, extract(epoch FROM "
    "    (array_agg(created_at ORDER BY created_at DESC))[lim.max_submissions] "
    "    + make_interval(secs => lim.per_seconds::float8) - now()) AS wait_s "
    "  FROM submissions WHERE user_id = $1 AND leaderboard_id = l.id AND mode = $5 "
    "  AND created_at > now() - make_interval(secs => lim.per_seconds::float8)) win ON true"
)
# 3: the code (deduplicated), the submission, its queued runs (one after another in turns and in the user's
# places) and each run's first event; its trigger NOTIFYs followers. $9 the first run's turn, $10 the
# user's unfinished runs before these.
STORE_SQL = (
    "WITH code AS (INSERT INTO code_blobs (sha256, code) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING), "
    "sub AS (INSERT INTO submissions (user_id, leaderboard_id, task_name, file_name, code_sha256, mode, "
    "  public_id) VALUES ($3, $4, $5, $6, $1, $7, COALESCE($8, replace(gen_random_uuid()::text, '-', ''))) "
    "  RETURNING id), "
    "queued AS (INSERT INTO runs (id, submission_id, leaderboard_id, user_id, mode, secret, gpu_type, "
    "  requested_site, state, result_key, turn, user_place) "
    "  SELECT r.id, (SELECT id FROM sub), $4, $3, r.mode, r.secret, r.gpu_type, r.site, 'QUEUED', r.key, "
    "    $9 + r.n - 1, $10 + r.n "
    "  FROM unnest($11::uuid[], $12::text[], $13::bool[], $14::text[], $15::text[], $16::text[]) "
    "    WITH ORDINALITY AS r(id, mode, secret, gpu_type, site, key, n) "
    "  RETURNING id), "
    "events AS (INSERT INTO run_events (run_id, kind, state, message) "
    "  SELECT id, 'state', 'QUEUED', 'queued' FROM queued) "
    "SELECT id FROM sub"
)


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


class SubmissionsStore(StoreBase):
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
            user_row: Any = await conn.fetchrow(LOCK_USER_SQL, user, uuid.UUID(runs[0].run_id))
            if user_row["existing"] is not None:
                return int(user_row["existing"])
            if user_row["banned"]:
                raise RefusedError(
                    f"{user} is banned from submitting; ask the organisers if you think this is a mistake",
                    "banned",
                )
            mine: Any = await conn.fetchrow(
                CHECKS_SQL, user_row["id"], PER_MINUTE_S, per_minute or 1, leaderboard_id, mode
            )
            cap, where = max_unfinished, ""
            if leaderboard_id is not None:
                _check_open(mine, mode)
                if mine["max_unfinished_per_user"] is not None:
                    cap, where = mine["max_unfinished_per_user"], f" on {mine['board']}"
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
            submission_id: int = await conn.fetchval(
                STORE_SQL,
                digest,
                code,
                user_row["id"],
                leaderboard_id,
                task_name,
                file_name,
                mode,
                public_id,
                turn,
                mine["unfinished"],
                [uuid.UUID(r.run_id) for r in runs],
                [r.mode for r in runs],
                [r.secret for r in runs],
                [r.gpu_type for r in runs],
                [r.requested_site for r in runs],
                [r.result_key for r in runs],
            )
            return submission_id


# A submission's code with its owner and its board's state, by its public id
SUBMISSION_CODE_SQL = (
    "SELECT s.public_id, u.name AS account, COALESCE(u.display_name, u.name) AS user_name, "
    "l.name AS leaderboard, s.file_name, c.code, s.created_at, "
    "COALESCE(l.deadline <= now(), false) AS closed, "
    "COALESCE(l.reveal_code, false) AS reveal_code, COALESCE(l.visibility = 'hidden', false) AS hidden, "
    "EXISTS (SELECT 1 FROM runs r WHERE r.submission_id = s.id AND r.ranked) AS ranked, s.deleted_at "
    "FROM submissions s JOIN users u ON u.id = s.user_id JOIN code_blobs c ON c.sha256 = s.code_sha256 "
    "LEFT JOIN leaderboards l ON l.id = s.leaderboard_id WHERE s.public_id = $1"
)


class SubmissionFilesStore(StoreBase):
    """A submission's code read back, and a submission deleted (softly: migration 0011)."""

    @retried
    async def submission_code(self, public_id: str) -> SubmissionCode | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(SUBMISSION_CODE_SQL, public_id)
        return None if row is None else SubmissionCode(*(row[k] for k in SubmissionCode.__dataclass_fields__))

    @retried
    async def delete_submission(self, public_id: str, deleted_by: str | None) -> DeletedSubmission | None:
        """Mark a submission deleted (by account ``deleted_by``; None: the operator) and take its runs out
        of the ranking; cancel its queued runs and ask the workers of its running ones to cancel them.
        None if there is no such submission, or it was deleted already."""
        async with self._conn() as conn, conn.transaction():
            submission_id = await conn.fetchval(
                "SELECT id FROM submissions WHERE public_id = $1 AND deleted_at IS NULL FOR UPDATE", public_id
            )
            if submission_id is None:
                return None
            # the runs locked in record_result's order: a result recorded at the same moment either ranks
            # first and is unranked here, or sees the deletion and does not rank
            runs = await conn.fetch(
                "SELECT id, ranked, finished_at IS NOT NULL AS finished, job_id IS NULL AND worker IS NULL "
                "AS idle FROM runs WHERE submission_id = $1 ORDER BY id FOR UPDATE",
                submission_id,
            )
            await conn.execute(
                "UPDATE submissions SET deleted_at = now(), "
                "deleted_by = (SELECT id FROM users WHERE name = $2) WHERE id = $1",
                submission_id,
                deleted_by,
            )
            unranked = await conn.fetchval(
                "WITH unmarked AS (UPDATE runs SET ranked = false WHERE submission_id = $1 AND ranked "
                "RETURNING leaderboard_id) SELECT min(leaderboard_id) FROM unmarked",
                submission_id,
            )
            if unranked is not None:
                await notify_change(conn, board_changed(unranked))
            idle = [r["id"] for r in runs if not r["finished"] and r["idle"]]
            busy = [r["id"] for r in runs if not r["finished"] and not r["idle"]]
            if idle:
                await conn.execute(
                    "UPDATE runs SET state = 'CANCELLED', passed = false, "
                    "error = 'its submission was deleted', finished_at = now(), result_key = NULL "
                    "WHERE id = ANY($1)",
                    idle,
                )
                for run_id in idle:
                    await insert_event(conn, run_id, "finished", "CANCELLED", "its submission was deleted")
            for run_id in busy:
                await conn.execute("UPDATE runs SET cancel_requested = true WHERE id = $1", run_id)
                await conn.execute("SELECT pg_notify('gateway_cancel', $1)", str(run_id))
        return DeletedSubmission(public_id, sum(1 for r in runs if r["ranked"]), len(idle), len(busy))


def _check_open(checks: Any, mode: str) -> None:
    """Refuse a submission to a leaderboard that was deleted, is closed, or whose rate limit for ``mode``
    the user has reached (CHECKS_SQL's row)."""
    if checks["board"] is None:
        raise UserError("that leaderboard no longer exists (it was deleted)")
    if checks["closed"]:
        raise RefusedError(
            f"leaderboard {checks['board']} closed at {checks['deadline']:%Y-%m-%d %H:%M %Z}; "
            "it takes no more submissions",
            "closed",
        )
    if checks["max_submissions"] is not None and checks["board_used"] >= checks["max_submissions"]:
        raise _rate_limited(
            f"{checks['max_submissions']} {mode} submission(s) per {_duration(checks['per_seconds'])} "
            f"on {checks['board']}",
            checks["board_wait_s"],
        )


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
