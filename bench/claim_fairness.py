"""Fair claims: how soon a second user's run is claimed behind one user's 500, and what the turn order costs
a claim, against the old oldest-first order (ORDER BY queued_at, id), measured in the same run.

In a scratch database (PostgreSQL only). Rounds: user A queues 500 runs, then user B one; workers claim in
rounds of LIMIT runs (nothing finishes) until B's run comes: with turns (Store.claim) and with the
oldest-first claim, from the same queue. Latency: the claim statement itself (gateway.store.queue.CLAIM_SQL,
and the same statement ordered oldest-first), a claim of 16 with 64 runs already held by workers, at 500
and 10,000 queued runs (users at the default cap of 20 unfinished runs each: 25 and 500 users), each in a
transaction rolled back so that every repetition sees the same queue; then the server's own time for it
(EXPLAIN ANALYZE) at 10,000. For reference, a claim that numbers each user's runs with a window function on
every claim (the design the stored turns replaced) at 10,000.

`python -m bench.claim_fairness` runs it alone."""

from __future__ import annotations

import asyncio
import math
import re
import statistics
import uuid

import asyncpg
from rich.console import Console

from bench.common import Row, median_ms, report
from gateway.config.settings import Settings
from gateway.store import LeaderboardRecord, NewRun, Store
from gateway.store.admin import scratch_database
from gateway.store.migrate import apply_migrations
from gateway.store.queue import CLAIM_SQL

AHEAD = 500  # user A's runs queued before user B's one
LIMITS = (16, 1)  # runs per claim round: a worker's default concurrency, and one slot freeing at a time
SIZES = (500, 10_000)  # queued runs for the latency rows
PER_USER = 20  # runs per user in those queues (the default cap on unfinished runs)
HELD = 64  # runs held by workers while claims are timed (4 workers of 16)
CLAIM = 16
REPEATS = 40
STALE_S = 45.0

FAIR_ORDER = "ORDER BY turn, user_place, queued_at, id"
FIFO_SQL = CLAIM_SQL.replace(FAIR_ORDER, "ORDER BY queued_at, id")
# The rejected design: each user's unfinished runs numbered on every claim (no stored turn), for reference.
WINDOW_SQL = (
    "WITH turns AS (SELECT id, queued_at, worker, heartbeat_at, "
    "  row_number() OVER (PARTITION BY user_id ORDER BY queued_at, id) AS n "
    "  FROM runs WHERE finished_at IS NULL), "
    "picked AS (SELECT r.id FROM (SELECT id, n, queued_at FROM turns WHERE (worker IS NULL "
    "  OR (heartbeat_at < now() - make_interval(secs => $2) AND worker <> $1)) "
    "  AND ($4::uuid[] IS NULL OR id = ANY($4)) ORDER BY n, queued_at, id) t JOIN runs r ON r.id = t.id "
    "  WHERE r.finished_at IS NULL AND (r.worker IS NULL "
    "  OR (r.heartbeat_at < now() - make_interval(secs => $2) AND r.worker <> $1)) "
    "  ORDER BY t.n, t.queued_at, t.id LIMIT $3 FOR UPDATE OF r SKIP LOCKED) "
    "UPDATE runs r SET worker = $1, heartbeat_at = now(), claims = r.claims + 1 "
    "FROM picked WHERE r.id = picked.id RETURNING r.id"
)
assert FIFO_SQL != CLAIM_SQL, "the claim's order changed: update FAIR_ORDER"


async def queue_runs(store: Store, board: LeaderboardRecord, user: str, runs: int) -> list[str]:
    """``runs`` test runs of ``user``, in submissions of 10 (through the store's own call)."""
    run_ids: list[str] = []
    while len(run_ids) < runs:
        batch = [str(uuid.uuid4()) for _ in range(min(10, runs - len(run_ids)))]
        new = [NewRun(r, "test", "H100", "00" * 32) for r in batch]
        await store.create_submission(user, board.id, "t", "k.py", "x = 1\n", "test", new)
        run_ids += batch
    return run_ids


async def new_store(dsn: str) -> tuple[Store, LeaderboardRecord]:
    await asyncio.to_thread(apply_migrations, dsn)
    store: Store = await Store.connect(dsn, max_size=8)
    board = await store.create_leaderboard("bench", "", {"name": "t"}, "mean", ["H100"], secret_seed=1)
    return store, board


def round_of(claims: list[list[str]], run_id: str) -> int:
    return next(n for n, claimed in enumerate(claims, 1) if run_id in claimed)


async def rounds(base_dsn: str, limit: int) -> tuple[int, int]:
    """The claim round in which B's run is claimed: (oldest first, in turns)."""
    async with scratch_database(base_dsn, "bench_fair") as dsn:
        store, board = await new_store(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            queued = await queue_runs(store, board, "ann", AHEAD)
            [bob] = await queue_runs(store, board, "bob", 1)
            fair: list[list[str]] = []
            while not fair or bob not in fair[-1]:
                fair.append([c.run_id for c in await store.claim("fair", limit, STALE_S)])
            await store.release("fair", [r for claimed in fair for r in claimed])
            fifo: list[list[str]] = []
            while not fifo or bob not in fifo[-1]:
                fifo.append([str(r["id"]) for r in await conn.fetch(FIFO_SQL, "fifo", STALE_S, limit, None)])
                assert fifo[-1], "the queue ran dry before B's run was claimed"
            assert len(queued) == AHEAD
            return round_of(fifo, bob), round_of(fair, bob)
        finally:
            await conn.close()
            await store.close()


async def server_ms(conn: asyncpg.Connection, sql: str) -> float:
    """The server's execution time of one claim (EXPLAIN ANALYZE, rolled back), median of a few."""
    times = []
    for _ in range(10):
        tx = conn.transaction()
        await tx.start()
        try:
            plan = await conn.fetch("EXPLAIN (ANALYZE, TIMING OFF) " + sql, "timer", STALE_S, CLAIM, None)
        finally:
            await tx.rollback()
        found = re.search(r"Execution Time: ([\d.]+) ms", plan[-1][0])
        assert found is not None, plan
        times.append(float(found.group(1)))
    return statistics.median(times)


async def latencies(base_dsn: str, size: int) -> dict[str, float]:
    """A claim of CLAIM runs, client-side ms (and server-side at the biggest size), by order."""
    async with scratch_database(base_dsn, "bench_fair") as dsn:
        store, board = await new_store(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            users = math.ceil((size + HELD) / PER_USER)
            for first in range(0, users, 25):
                await asyncio.gather(
                    *(
                        queue_runs(store, board, f"user-{n}", PER_USER)
                        for n in range(first, min(users, first + 25))
                    )
                )
            for n in range(HELD // CLAIM):  # workers hold the first 64 runs, heart-beating
                await store.claim(f"worker-{n}", CLAIM, STALE_S)
            await conn.execute("VACUUM ANALYZE runs")
            queued = await conn.fetchval(
                "SELECT count(*) FROM runs WHERE finished_at IS NULL AND worker IS NULL"
            )
            assert queued >= size, queued

            async def timed(sql: str) -> float:
                async def claim() -> None:
                    tx = conn.transaction()
                    await tx.start()
                    try:
                        assert len(await conn.fetch(sql, "timer", STALE_S, CLAIM, None)) == CLAIM
                    finally:
                        await tx.rollback()  # every repetition sees the same queue

                return await median_ms(claim, REPEATS)

            out = {"fifo": await timed(FIFO_SQL), "fair": await timed(CLAIM_SQL)}
            if size == max(SIZES):
                out["window"] = await timed(WINDOW_SQL)
                out["fifo_server"] = await server_ms(conn, FIFO_SQL)
                out["fair_server"] = await server_ms(conn, CLAIM_SQL)
            return out
        finally:
            await conn.close()
            await store.close()


async def main(console: Console) -> None:
    dsn = Settings().database_dsn()
    if dsn is None:
        console.print("claim fairness bench skipped: no database (start the dev stack)")
        return
    rows = []
    for limit in LIMITS:
        fifo, fair = await rounds(dsn, limit)
        rows.append(
            Row(f"B's 1 run behind A's {AHEAD}: claim round, in turns (limit {limit})", "oldest first",
                fifo, fair, unit="round")
        )  # fmt: skip
    for size in SIZES:
        ms = await latencies(dsn, size)
        rows.append(
            Row(f"claim of {CLAIM} at {size:,} queued, in turns", "oldest first", ms["fifo"], ms["fair"])
        )
        if "window" in ms:
            rows.append(
                Row(f"claim of {CLAIM} at {size:,} queued, in turns", "turns numbered per claim (window)",
                    ms["window"], ms["fair"])
            )  # fmt: skip
            rows.append(
                Row("same, server time (EXPLAIN ANALYZE), in turns", "oldest first",
                    ms["fifo_server"], ms["fair_server"])
            )  # fmt: skip
    report(
        f"claim fairness: one user's {AHEAD} queued runs ahead of another's 1, and the claim's cost "
        f"({HELD} runs held by workers)",
        rows,
        console,
    )


if __name__ == "__main__":
    asyncio.run(main(Console(width=150)))
