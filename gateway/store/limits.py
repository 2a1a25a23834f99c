"""The HTTP API's limits, shared by every API process: token buckets (rate limits) and event-stream leases.

Both tables are UNLOGGED (migration 0006): cheap to write on every request, and losing them in a crash
only refills the buckets. Times are the database's clock, so API processes on several machines agree.
A take or a lease is one round trip and is not retried: an API request must not wait two minutes for a
database that is away (the caller decides what to do then)."""

from __future__ import annotations

import uuid

from gateway.core.errors import StoreError
from gateway.store.base import StoreBase, retried

# A bucket's tokens now: what it had, plus what refilled since (never more than its capacity, never less
# for a clock that another take moved past now()). $2 the capacity, $3 tokens per second.
_REFILLED = "least($2::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.at)::float8) * $3::float8)"
_LEFT = f"(CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END)"
# One statement per take: a new key starts full (less this token); an existing one refills, gives a token
# if it has one, and says whether it did. full_at: when the bucket will be full again (pruning).
TAKE_SQL = (  # composed of constants only
    "INSERT INTO api_buckets AS b (key, tokens, at, full_at, taken) "  # noqa: S608
    "VALUES ($1, $2::float8 - 1, now(), now() + make_interval(secs => 1 / $3::float8), true) "
    "ON CONFLICT (key) DO UPDATE SET "
    f"  tokens = {_LEFT}, taken = {_REFILLED} >= 1, at = greatest(b.at, now()), "
    f"  full_at = greatest(b.at, now()) + make_interval(secs => ($2::float8 - {_LEFT}) / $3::float8) "
    "RETURNING taken, tokens"
)

# Taking up to $4 tokens at once (the takes of several requests that arrived together in one process): the
# bucket's row locked and read (cur), refilled, as many tokens given as it holds (at most $4), and written
# back. A key without a row starts full; if another process made its row meanwhile, this statement writes
# nothing and says so (granted -1: ask again, the row is there now). $2 capacity, $3 tokens per second.
TAKE_MANY_SQL = (  # composed of constants only
    "WITH cur AS (SELECT tokens, at FROM api_buckets WHERE key = $1 FOR UPDATE), "
    "r AS (SELECT COALESCE((SELECT least($2::float8, "
    "    tokens + greatest(0, extract(epoch FROM now() - at)::float8) * $3::float8) FROM cur), "
    "  $2::float8) AS refilled, greatest((SELECT at FROM cur), now()) AS at), "
    "g AS (SELECT refilled, least($4::float8, floor(refilled))::int AS granted, at FROM r), "
    "up AS (INSERT INTO api_buckets AS b (key, tokens, at, full_at, taken) "
    "  SELECT $1, refilled - granted, at, "
    "    at + make_interval(secs => ($2::float8 - refilled + granted) / $3::float8), granted >= 1 FROM g "
    "  ON CONFLICT (key) DO UPDATE SET tokens = EXCLUDED.tokens, at = EXCLUDED.at, "
    "    full_at = EXCLUDED.full_at, taken = EXCLUDED.taken WHERE EXISTS (SELECT 1 FROM cur) RETURNING 1) "
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM up) THEN granted ELSE -1 END AS granted, "
    "  refilled - granted AS tokens FROM g"
)

# Opening a stream: under one lock for every API process (opens are rare next to requests, and the caps
# must hold exactly), count the live leases in all and the client's, and insert one if both are under.
STREAM_LOCK = 0x6777_5354_5245_414D  # pg_advisory_xact_lock key ("gwSTREAM")
OPEN_STREAM_SQL = (
    "WITH live AS (SELECT client FROM api_stream_leases WHERE expires_at > now()), "
    "counts AS (SELECT count(*) AS total, count(*) FILTER (WHERE client = $3) AS mine FROM live), "
    "added AS (INSERT INTO api_stream_leases (id, process, client, expires_at) "
    "  SELECT $1, $2, $3, now() + make_interval(secs => $6) FROM counts WHERE total < $4 AND mine < $5 "
    "  RETURNING id) "
    "SELECT total, mine, (SELECT count(*) FROM added) AS opened FROM counts"
)
# Renewing a process's leases: every stream it still serves (re-made if it expired meanwhile, say while
# the database was away), and none of those it no longer serves (a close that failed).
RENEW_STREAMS_SQL = (
    "WITH kept AS (INSERT INTO api_stream_leases (id, process, client, expires_at) "
    "  SELECT i, $2, c, now() + make_interval(secs => $4) FROM unnest($1::uuid[], $3::text[]) AS t(i, c) "
    "  ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at RETURNING id) "
    "DELETE FROM api_stream_leases WHERE process = $2 AND NOT (id = ANY($1::uuid[]))"
)


class LimitsStore(StoreBase):
    async def take_token(self, key: str, capacity: float, per_second: float) -> tuple[bool, float]:
        """Take one token from ``key``'s bucket (``capacity`` tokens, refilled at ``per_second``):
        (whether one was taken, the tokens left). One statement, atomic across processes."""
        async with self._conn() as conn:
            row = await conn.fetchrow(TAKE_SQL, key, capacity, per_second)
        assert row is not None  # an upsert always returns its row
        return bool(row["taken"]), float(row["tokens"])

    async def take_tokens(
        self, key: str, capacity: float, per_second: float, count: int
    ) -> tuple[int, float]:
        """Take up to ``count`` tokens from ``key``'s bucket: (how many were taken, the tokens left). One
        statement (two when the key's row was made by another process at the same moment)."""
        async with self._conn() as conn:
            for _ in range(2):
                row = await conn.fetchrow(TAKE_MANY_SQL, key, capacity, per_second, count)
                assert row is not None  # g always has its one row
                if row["granted"] >= 0:
                    return int(row["granted"]), float(row["tokens"])
        raise StoreError(f"the token bucket {key!r} could not be written twice in a row")

    @retried
    async def prune_buckets(self) -> int:
        """Forget buckets that are full again (as good as new); how many went."""
        async with self._conn() as conn:
            status = await conn.execute("DELETE FROM api_buckets WHERE full_at < now()")
        return int(status.split()[-1])

    async def open_stream_lease(
        self, lease: uuid.UUID, process: str, client: str, max_total: int, max_client: int, ttl_s: float
    ) -> tuple[bool, int, int]:
        """A lease for one more stream of ``client`` if fewer than ``max_total`` live leases exist in all
        and fewer than ``max_client`` of the client's: (opened, live in all, live of the client)."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", STREAM_LOCK)
            row = await conn.fetchrow(OPEN_STREAM_SQL, lease, process, client, max_total, max_client, ttl_s)
        assert row is not None
        return bool(row["opened"]), int(row["total"]), int(row["mine"])

    async def renew_stream_leases(self, process: str, leases: dict[uuid.UUID, str], ttl_s: float) -> None:
        """Keep exactly ``leases`` (id -> client) alive for ``process`` for ``ttl_s`` more seconds."""
        async with self._conn() as conn:
            await conn.execute(RENEW_STREAMS_SQL, list(leases), process, list(leases.values()), ttl_s)

    async def close_stream_lease(self, lease: uuid.UUID) -> None:
        async with self._conn() as conn:
            await conn.execute("DELETE FROM api_stream_leases WHERE id = $1", lease)

    @retried
    async def prune_stream_leases(self) -> int:
        """Forget expired leases (of processes that stopped renewing them); how many went."""
        async with self._conn() as conn:
            status = await conn.execute("DELETE FROM api_stream_leases WHERE expires_at < now()")
        return int(status.split()[-1])

    @retried
    async def live_stream_leases(self) -> int:
        """Event streams open now in every API process."""
        async with self._conn() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM api_stream_leases WHERE expires_at > now()"
            )
        return count
