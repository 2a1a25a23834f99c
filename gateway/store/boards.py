"""Users, leaderboards, their GPU types and rate limits, and the sites' health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from gateway.core.errors import StoreError
from gateway.store.base import StoreBase, retried
from gateway.store.changes import ALL_BOARDS, USERS, notify_change
from gateway.store.records import (
    IsolationCheck,
    LeaderboardRecord,
    LeaderboardSummary,
    RateLimit,
    SiteHealth,
    UserRecord,
)

_BOARD_SELECT = (
    "SELECT l.id, l.name, l.description, l.task, l.ranking_by, l.deadline, l.visibility, l.created_at, "
    "l.max_unfinished_per_user, l.reveal_code, u.name AS creator, "
    "COALESCE(array_agg(g.gpu_type ORDER BY g.gpu_type) FILTER (WHERE g.gpu_type IS NOT NULL), '{}') "
    "AS gpu_types "
    "FROM leaderboards l LEFT JOIN leaderboard_gpus g ON g.leaderboard_id = l.id "
    "LEFT JOIN users u ON u.id = l.creator_id "
)

_USER_SELECT = "SELECT id, name, banned, admin, display_name, discord_id FROM users"


def _user(row: asyncpg.Record) -> UserRecord:
    return UserRecord(
        row["id"], row["name"], row["banned"], row["admin"], row["display_name"], row["discord_id"]
    )


def _board(row: asyncpg.Record) -> LeaderboardRecord:
    return LeaderboardRecord(
        row["id"],
        row["name"],
        row["description"],
        row["task"],
        row["ranking_by"],
        list(row["gpu_types"]),
        row["deadline"],
        row["visibility"],
        row["creator"],
        row["created_at"],
        row["max_unfinished_per_user"],
        row["reveal_code"],
    )


async def account_id(conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record], name: str) -> int:
    """The id of account ``name``, made if it is new (inside the caller's transaction)."""
    user_id: int = await conn.fetchval(
        "INSERT INTO users (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
        "RETURNING id",
        name,
    )
    return user_id


class BoardsStore(StoreBase):
    @retried
    async def ensure_user(self, name: str) -> int:
        async with self._conn() as conn:
            return await account_id(conn, name)

    @retried
    async def get_user(self, name: str) -> UserRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(f"{_USER_SELECT} WHERE name = $1", name)
        return _user(row) if row else None

    @retried
    async def discord_user(self, discord_id: str, display_name: str) -> UserRecord:
        """The account of a Discord user (made on first sight), keyed by their id and named
        'discord:<id>'; its display name is refreshed when it changed."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "INSERT INTO users (name, discord_id, display_name) VALUES ('discord:' || $1, $1, $2) "
                "ON CONFLICT (name) DO UPDATE SET display_name = EXCLUDED.display_name, "
                "discord_id = EXCLUDED.discord_id "
                "WHERE users.display_name IS DISTINCT FROM EXCLUDED.display_name "
                "OR users.discord_id IS DISTINCT FROM EXCLUDED.discord_id "
                "RETURNING id, name, banned, admin, display_name, discord_id",
                discord_id,
                display_name,
            )
            if row is None:  # nothing changed: read it
                row = await conn.fetchrow(f"{_USER_SELECT} WHERE name = 'discord:' || $1", discord_id)
            else:  # a new or renamed user: the rankings show their name
                await notify_change(conn, ALL_BOARDS)
        if row is None:
            raise StoreError(f"the account of Discord user {discord_id} vanished while it was read")
        return _user(row)

    @retried
    async def link_discord(self, name: str, discord_id: str) -> str:
        """Make an account from before Discord ids were kept the account of Discord user ``discord_id``:
        renamed 'discord:<id>', or, when that user has an account already, merged into it (submissions,
        runs and created boards move; a ban on either stays). Returns 'renamed', 'merged' or 'missing'."""
        target = f"discord:{discord_id}"
        async with self._conn() as conn, conn.transaction():
            old = await conn.fetchrow(
                "SELECT id, banned FROM users WHERE name = $1 AND discord_id IS NULL FOR UPDATE", name
            )
            if old is None:
                return "missing"
            await notify_change(conn, ALL_BOARDS, USERS)  # renamed or merged: names and callers change
            new_id = await conn.fetchval("SELECT id FROM users WHERE name = $1 FOR UPDATE", target)
            if new_id is None:
                await conn.execute(
                    "UPDATE users SET name = $2, discord_id = $3, display_name = COALESCE(display_name, $1) "
                    "WHERE id = $4",
                    name,
                    target,
                    discord_id,
                    old["id"],
                )
                return "renamed"
            for table, column in (
                ("submissions", "user_id"),
                ("runs", "user_id"),
                ("leaderboards", "creator_id"),
            ):
                await conn.execute(
                    f"UPDATE {table} SET {column} = $1 WHERE {column} = $2",  # noqa: S608 (constants)
                    new_id,
                    old["id"],
                )
            await conn.execute("UPDATE users SET banned = banned OR $2 WHERE id = $1", new_id, old["banned"])
            await conn.execute("DELETE FROM users WHERE id = $1", old["id"])
            return "merged"

    @retried
    async def set_admin(self, name: str, admin: bool) -> bool:
        """Give an account an admin's rights or take them away (made if unknown); True if it changed."""
        return await self._set_flag(name, "admin", admin)

    @retried
    async def set_banned(self, name: str, banned: bool) -> bool:
        """Ban or unban a user (created if unknown, so a ban can come first); True if it changed."""
        return await self._set_flag(name, "banned", banned)

    async def _set_flag(self, name: str, flag: str, value: bool) -> bool:
        async with self._conn() as conn:
            previous = await conn.fetchval(
                f"WITH old AS (SELECT {flag} FROM users WHERE name = $1) "  # noqa: S608 (flag: a constant)
                f"INSERT INTO users (name, {flag}) VALUES ($1, $2) "
                f"ON CONFLICT (name) DO UPDATE SET {flag} = $2 RETURNING (SELECT {flag} FROM old)",
                name,
                value,
            )
            await notify_change(conn, USERS)  # the API processes' cached callers
        return previous is None or previous != value

    @retried
    async def set_token(self, name: str, token_sha256: str | None) -> bool:
        """Give a user (created if unknown) an API token's hash, replacing any old one; None revokes it.
        True if something changed (revoking from a user without a token changes nothing)."""
        async with self._conn() as conn, conn.transaction():
            await notify_change(conn, USERS)  # at the commit: a revoked or replaced token is refused at once
            if token_sha256 is None:
                status = await conn.execute(
                    "UPDATE users SET token_sha256 = NULL WHERE name = $1 AND token_sha256 IS NOT NULL", name
                )
                return status != "UPDATE 0"
            await conn.execute(
                "INSERT INTO users (name, token_sha256) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET token_sha256 = EXCLUDED.token_sha256",
                name,
                token_sha256,
            )
            return True

    @retried
    async def user_by_token(self, token_sha256: str) -> UserRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(f"{_USER_SELECT} WHERE token_sha256 = $1", token_sha256)
        return _user(row) if row else None

    @retried
    async def get_leaderboard(self, name: str) -> LeaderboardRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(_BOARD_SELECT + "WHERE l.name = $1 GROUP BY l.id, u.name", name)
        return _board(row) if row is not None else None

    @retried
    async def list_leaderboards(
        self, include_hidden: bool = False, name: str | None = None
    ) -> list[LeaderboardSummary]:
        """Leaderboards by name with their GPU types and numbers of submissions and runs (``name``: that
        one only)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT l.name, l.description, l.deadline, l.visibility, "
                "  COALESCE((SELECT array_agg(g.gpu_type ORDER BY g.gpu_type) FROM leaderboard_gpus g "
                "            WHERE g.leaderboard_id = l.id), '{}') AS gpu_types, "
                "  (SELECT count(*) FROM submissions s WHERE s.leaderboard_id = l.id) AS submissions, "
                "  (SELECT count(*) FROM runs r WHERE r.leaderboard_id = l.id) AS runs "
                "FROM leaderboards l WHERE ($1 OR l.visibility = 'public') "
                "AND ($2::text IS NULL OR l.name = $2) ORDER BY l.name",
                include_hidden,
                name,
            )
        return [
            LeaderboardSummary(
                r["name"],
                r["description"],
                list(r["gpu_types"]),
                r["deadline"],
                r["visibility"],
                r["submissions"],
                r["runs"],
            )
            for r in rows
        ]

    @retried
    async def create_leaderboard(
        self,
        name: str,
        description: str,
        task: dict[str, Any],
        ranking_by: str,
        gpu_types: list[str],
        *,
        secret_seed: int,
        deadline: datetime | None = None,
        visibility: str = "public",
        creator: str | None = None,
    ) -> LeaderboardRecord:
        """Create it, or return the existing one of that name unchanged (concurrent creators agree)."""
        async with self._conn() as conn, conn.transaction():
            creator_id = await account_id(conn, creator) if creator is not None else None
            board_id = await conn.fetchval(
                "INSERT INTO leaderboards (name, description, task, ranking_by, secret_seed, deadline, "
                "visibility, creator_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                name,
                description,
                task,
                ranking_by,
                secret_seed,
                deadline,
                visibility,
                creator_id,
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

    @retried
    async def set_deadline(self, name: str, deadline: datetime | None) -> bool:
        async with self._conn() as conn:
            done = await conn.execute("UPDATE leaderboards SET deadline = $2 WHERE name = $1", name, deadline)
            await notify_change(conn, ALL_BOARDS)
        return done.endswith(" 1")

    @retried
    async def set_unfinished_cap(self, name: str, cap: int | None) -> bool:
        """Cap each user's unfinished runs when they submit to this leaderboard (None: the gateway's
        default); False if there is no such leaderboard."""
        async with self._conn() as conn:
            done = await conn.execute(
                "UPDATE leaderboards SET max_unfinished_per_user = $2 WHERE name = $1", name, cap
            )
        return done.endswith(" 1")

    @retried
    async def delete_leaderboard(self, name: str) -> tuple[int, int] | None:
        """Delete a leaderboard with its submissions and runs; (submissions, runs) deleted, None if absent."""
        async with self._conn() as conn, conn.transaction():
            board_id = await conn.fetchval("SELECT id FROM leaderboards WHERE name = $1 FOR UPDATE", name)
            if board_id is None:
                return None
            runs = await conn.fetchval("SELECT count(*) FROM runs WHERE leaderboard_id = $1", board_id)
            submissions = await conn.fetchval(
                "SELECT count(*) FROM submissions WHERE leaderboard_id = $1", board_id
            )
            await conn.execute("DELETE FROM leaderboards WHERE id = $1", board_id)
            await notify_change(conn, ALL_BOARDS)  # a board of the same name may be made again
        return submissions, runs

    @retried
    async def set_rate_limit(self, board_id: int, limit: RateLimit | None, mode: str) -> None:
        async with self._conn() as conn:
            if limit is None:
                await conn.execute(
                    "DELETE FROM rate_limits WHERE leaderboard_id = $1 AND mode = $2", board_id, mode
                )
                return
            await conn.execute(
                "INSERT INTO rate_limits (leaderboard_id, mode, max_submissions, per_seconds) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (leaderboard_id, mode) DO UPDATE "
                "SET max_submissions = EXCLUDED.max_submissions, per_seconds = EXCLUDED.per_seconds",
                board_id,
                limit.mode,
                limit.max_submissions,
                limit.per_seconds,
            )

    @retried
    async def rate_limits(self, board_id: int) -> list[RateLimit]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT mode, max_submissions, per_seconds FROM rate_limits WHERE leaderboard_id = $1 "
                "ORDER BY mode",
                board_id,
            )
        return [RateLimit(r["mode"], r["max_submissions"], r["per_seconds"]) for r in rows]

    # -- site health ----------------------------------------------------------------------------------

    @retried
    async def record_site_outcome(self, site: str, error: str | None) -> None:
        async with self._conn() as conn:
            if error is None:
                await conn.execute(
                    "INSERT INTO site_health (site, consecutive_failures, last_ok_at) VALUES ($1, 0, now()) "
                    "ON CONFLICT (site) DO UPDATE SET consecutive_failures = 0, last_ok_at = now(), "
                    "updated_at = now()",
                    site,
                )
            else:
                await conn.execute(
                    "INSERT INTO site_health (site, consecutive_failures, last_error, last_failure_at) "
                    "VALUES ($1, 1, $2, now()) ON CONFLICT (site) DO UPDATE SET "
                    "consecutive_failures = site_health.consecutive_failures + 1, last_error = $2, "
                    "last_failure_at = now(), updated_at = now()",
                    site,
                    error[:2000],
                )

    @retried
    async def set_drained(self, site: str, drained: bool, reason: str | None = None) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO site_health (site, drained, drain_reason) VALUES ($1, $2, $3) "
                "ON CONFLICT (site) DO UPDATE SET drained = $2, drain_reason = $3, updated_at = now()",
                site,
                drained,
                reason if drained else None,
            )

    @retried
    async def site_health(self) -> dict[str, SiteHealth]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT site, drained, drain_reason, consecutive_failures, last_error, last_ok_at, "
                "last_failure_at FROM site_health ORDER BY site"
            )
        return {r["site"]: SiteHealth(*r.values()) for r in rows}

    # -- site isolation -------------------------------------------------------------------------------

    @retried
    async def record_isolation_check(
        self, site: str, digest: str, kind: str, passed: bool, detail: str
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO site_isolation (site, digest, kind, passed, detail) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (site) DO UPDATE SET digest = $2, kind = $3, passed = $4, detail = $5, "
                "checked_at = now()",
                site,
                digest,
                kind,
                passed,
                detail[:2000],
            )

    @retried
    async def isolation_checks(self) -> dict[str, IsolationCheck]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT site, digest, kind, passed, detail, checked_at FROM site_isolation ORDER BY site"
            )
        return {r["site"]: IsolationCheck(*r.values()) for r in rows}

    @retried
    async def set_reveal_code(self, name: str, reveal: bool) -> bool:
        """Whether a leaderboard's ranked submissions' code is everyone's to read once its deadline has
        passed; False if there is no such leaderboard."""
        async with self._conn() as conn:
            done = await conn.execute(
                "UPDATE leaderboards SET reveal_code = $2 WHERE name = $1", name, reveal
            )
        return done.endswith(" 1")
