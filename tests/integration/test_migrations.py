"""Migrations against the real PostgreSQL, each test in a scratch database of its own: every migration
applies, rolls back to exactly the schema before it, and applies again; rows made under 0002's schema
survive 0003 with their new columns backfilled (and 0003's rollback keeps them too); queued runs get their
turns from 0005."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gateway.config.settings import REPO_ROOT
from gateway.core.errors import StoreError
from gateway.store import NewRun, Store
from gateway.store.admin import scratch_database
from gateway.store.migrate import BASE, applied_migrations, apply_migrations, rollback_migrations

pytestmark = pytest.mark.integration
MIGRATIONS = REPO_ROOT / "migrations"
REVISIONS = sorted(p.stem for p in MIGRATIONS.glob("[0-9]*.sql") if not p.stem.endswith(".rollback"))

# Everything a migration may create in the public schema, as text: equal fingerprints, equal schemas.
# yoyo's own bookkeeping tables are left out.
FINGERPRINT = {
    "columns": "SELECT table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable "
    "|| ' default=' || COALESCE(column_default, '-') FROM information_schema.columns "
    "WHERE table_schema = 'public' AND table_name NOT LIKE '%yoyo%'",
    "constraints": "SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(c.oid) "
    "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public' "
    "AND conrelid::regclass::text NOT LIKE '%yoyo%'",
    "indexes": "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%'",
    "triggers": "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal",
    "functions": "SELECT p.proname || ': ' || p.prosrc FROM pg_proc p JOIN pg_namespace n "
    "ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
    "sequences": "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND relkind = 'S' AND relname NOT LIKE '%yoyo%'",
}


async def fingerprint(dsn: str) -> dict[str, list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {kind: sorted(r[0] for r in await conn.fetch(sql)) for kind, sql in FINGERPRINT.items()}
    finally:
        await conn.close()


@pytest.fixture
async def scratch(dev_env: dict[str, str]) -> AsyncIterator[str]:
    async with scratch_database(dev_env["GATEWAY_DATABASE_URL"], "test_migrations") as dsn:
        yield dsn


async def test_the_scratch_database_is_dropped_afterwards(dev_env: dict[str, str]) -> None:
    admin = dev_env["GATEWAY_DATABASE_URL"]
    async with scratch_database(admin, "test_migrations") as dsn:
        name = dsn.rsplit("/", 1)[1]
        kept_open = await asyncpg.connect(dsn)  # an open connection does not keep it alive
    conn = await asyncpg.connect(admin)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
    finally:
        await conn.close()
    assert kept_open.is_closed() or not await _alive(kept_open)


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


async def test_every_migration_rolls_back_to_the_schema_before_it_and_applies_again(scratch: str) -> None:
    async def apply(upto: str | None = None) -> int:
        return await asyncio.to_thread(apply_migrations, scratch, upto=upto)

    async def rollback(to: str | None = None) -> list[str]:
        return await asyncio.to_thread(rollback_migrations, scratch, to)

    async def applied() -> list[str]:
        return await asyncio.to_thread(applied_migrations, scratch)

    schemas = [await fingerprint(scratch)]  # schemas[i]: after the first i migrations
    for revision in REVISIONS:
        assert await apply(revision) == 1
        schemas.append(await fingerprint(scratch))
    assert await applied() == REVISIONS
    assert len(set(map(repr, schemas))) == len(schemas)  # each migration changed something

    n = len(REVISIONS)
    assert await rollback() == [REVISIONS[-1]]  # the latest one
    assert await fingerprint(scratch) == schemas[n - 1] and await applied() == REVISIONS[:-1]
    assert await rollback(REVISIONS[0]) == REVISIONS[-2:0:-1]  # every one after the first
    assert await fingerprint(scratch) == schemas[1]
    assert await apply() == n - 1
    assert await fingerprint(scratch) == schemas[n]

    assert await rollback(BASE) == REVISIONS[::-1]  # all of them
    assert await fingerprint(scratch) == schemas[0] and await applied() == []
    assert await rollback() == []  # nothing left to roll back
    assert await apply() == n
    assert await fingerprint(scratch) == schemas[n] and await applied() == REVISIONS
    assert await apply() == 0

    with pytest.raises(StoreError, match="no migration 'nope'"):
        await rollback("nope")
    await rollback(REVISIONS[1])
    with pytest.raises(StoreError, match="is not applied"):
        await rollback(REVISIONS[2])


# -- data through 0003 ------------------------------------------------------------------------------


async def _make_0002_rows(conn: asyncpg.Connection) -> dict[str, Any]:
    """Rows as a gateway before 0003 wrote them (raw SQL: the store speaks only the newest schema)."""
    ids: dict[str, Any] = {}
    for name in ("alice", "bob"):
        ids[name] = await conn.fetchval("INSERT INTO users (name) VALUES ($1) RETURNING id", name)
    ids["board"] = await conn.fetchval(
        "INSERT INTO leaderboards (name, task, ranking_by) VALUES ('old', '{\"name\": \"t\"}', 'mean') "
        "RETURNING id"
    )
    ids["other_board"] = await conn.fetchval(
        "INSERT INTO leaderboards (name, task, ranking_by) VALUES ('older', '{}', 'geom') RETURNING id"
    )
    await conn.execute("INSERT INTO leaderboard_gpus VALUES ($1, 'H100'), ($1, 'A100')", ids["board"])
    await conn.execute("INSERT INTO code_blobs (sha256, code) VALUES ('c0de', 'print(1)')")

    async def submission(user: str, board: Any) -> int:
        sid: int = await conn.fetchval(
            "INSERT INTO submissions (user_id, leaderboard_id, task_name, file_name, code_sha256) "
            "VALUES ($1, $2, 't', 'sub.py', 'c0de') RETURNING id",
            ids[user],
            board,
        )
        return sid

    async def run(key: str, sub: int, mode: str, passed: bool | None, score: float | None, **kw: Any) -> None:
        ids[key] = uuid.uuid4()
        await conn.execute(
            "INSERT INTO runs (id, submission_id, mode, secret, result_key, gpu_type, site, partition, "
            "backend, job_id, state, passed, score, attempt, finished_at) "
            "VALUES ($1, $2, $3, $4, 'k', $5, 'alpha', 'h100', 'slurm', '7', $6, $7, $8, $9, "
            "CASE WHEN $7::boolean IS NULL THEN NULL ELSE now() END)",
            ids[key],
            sub,
            mode,
            kw.get("secret", False),
            kw.get("gpu", "H100"),
            "COMPLETED" if passed else ("RUNNING" if passed is None else "FAILED"),
            passed,
            score,
            kw.get("attempt", 1),
        )

    ids["s_ranked"] = await submission("alice", ids["board"])
    await run("ranked", ids["s_ranked"], "leaderboard", True, 0.002, attempt=2)
    await run("ranked_secret", ids["s_ranked"], "leaderboard", True, 0.0021, secret=True)
    ids["s_failed"] = await submission("bob", ids["board"])
    await run("failed", ids["s_failed"], "leaderboard", False, None)
    ids["s_test"] = await submission("bob", ids["board"])
    await run("test", ids["s_test"], "test", True, 0.001, gpu="A100")
    ids["s_adhoc"] = await submission("alice", None)
    await run("adhoc", ids["s_adhoc"], "benchmark", None, None)
    ids["s_adhoc_lb"] = await submission("alice", None)  # leaderboard mode without a leaderboard
    await run("adhoc_lb", ids["s_adhoc_lb"], "leaderboard", True, 0.001)
    ids["s_empty"] = await submission("bob", ids["other_board"])  # a submission whose runs never came
    return ids


async def test_rows_made_under_0002_survive_0003_backfilled(scratch: str) -> None:
    await asyncio.to_thread(apply_migrations, scratch, upto="0002_run_attempts")
    conn = await asyncpg.connect(scratch)
    try:
        ids = await _make_0002_rows(conn)
        await asyncio.to_thread(apply_migrations, scratch)

        modes = {r["id"]: r["mode"] for r in await conn.fetch("SELECT id, mode FROM submissions")}
        assert modes == {
            ids["s_ranked"]: "leaderboard",
            ids["s_failed"]: "leaderboard",
            ids["s_test"]: "test",
            ids["s_adhoc"]: "benchmark",
            ids["s_adhoc_lb"]: "leaderboard",
            ids["s_empty"]: "leaderboard",
        }
        runs = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, leaderboard_id, user_id, requested_site, site, ranked, claims, worker, "
                "cancel_requested, attempt, job_id FROM runs"
            )
        }
        owner = {
            "ranked": "alice",
            "ranked_secret": "alice",
            "failed": "bob",
            "test": "bob",
            "adhoc": "alice",
            "adhoc_lb": "alice",
        }
        for key, user in owner.items():
            row = runs[ids[key]]
            assert row["user_id"] == ids[user], key
            assert row["leaderboard_id"] == (None if key.startswith("adhoc") else ids["board"]), key
            assert row["requested_site"] == row["site"] == "alpha"
            # ranked: passed, scored, leaderboard mode, public, on a leaderboard
            assert row["ranked"] is (key == "ranked"), key
            assert (row["claims"], row["worker"], row["cancel_requested"]) == (0, None, False)
        assert runs[ids["ranked"]]["attempt"] == 2 and runs[ids["ranked"]]["job_id"] == "7"
        boards = await conn.fetch("SELECT secret_seed, visibility, creator_id FROM leaderboards")
        assert all(b["secret_seed"] is not None and b["visibility"] == "public" for b in boards)
        assert all(b["creator_id"] is None for b in boards)
    finally:
        await conn.close()

    store: Store = await Store.connect(scratch)
    try:
        [entry] = await store.ranking(ids["board"], "H100")
        assert (entry.user_name, entry.score, entry.run_id) == ("alice", 0.002, str(ids["ranked"]))
        assert await store.ranking(ids["board"], "A100") == []  # a test-mode run does not rank
        history = await store.history("alice")
        assert {r.run_id for r in history} == {
            str(ids[k]) for k in ("ranked", "ranked_secret", "adhoc", "adhoc_lb")
        }
        # the old rows live beside new ones made through the store
        run_id = str(uuid.uuid4())
        await store.create_submission(
            "bob",
            ids["board"],
            "t",
            "new.py",
            "print(2)",
            "leaderboard",
            [NewRun(run_id, "leaderboard", "H100", "k")],
        )
        assert [r.run_id for r in await store.history("bob", ids["board"], limit=1)] == [run_id]
    finally:
        await store.close()


async def test_queued_runs_get_their_turns_from_0005(scratch: str) -> None:
    """Runs queued before 0005 take turns as if each user's had been queued into an empty queue; a finished
    run keeps the defaults (it is never claimed again)."""
    await asyncio.to_thread(apply_migrations, scratch, upto="0004_identity_and_authority")
    conn = await asyncpg.connect(scratch)
    try:
        users = {n: await conn.fetchval("INSERT INTO users (name) VALUES ($1) RETURNING id", n) for n in "ab"}
        await conn.execute("INSERT INTO code_blobs (sha256, code) VALUES ('c0de', 'print(1)')")
        sub = {
            n: await conn.fetchval(
                "INSERT INTO submissions (user_id, task_name, file_name, code_sha256, mode) "
                "VALUES ($1, 't', 'k.py', 'c0de', 'test') RETURNING id",
                uid,
            )
            for n, uid in users.items()
        }
        order = ["a", "a", "a", "b", "a"]  # queued in this order; ann's last one has finished
        runs = [uuid.uuid4() for _ in order]
        for n, (who, run_id) in enumerate(zip(order, runs, strict=True)):
            await conn.execute(
                "INSERT INTO runs (id, submission_id, user_id, mode, result_key, state, queued_at, "
                "finished_at) VALUES ($1, $2, $3, 'test', '00', 'QUEUED', now() + make_interval(secs => $4), "
                "CASE WHEN $5 THEN now() END)",
                run_id,
                sub[who],
                users[who],
                n,
                n == 4,
            )
        await asyncio.to_thread(apply_migrations, scratch)
        turns = {
            r["id"]: (r["turn"], r["user_place"])
            for r in await conn.fetch("SELECT id, turn, user_place FROM runs")
        }
        assert [turns[r] for r in runs] == [(0, 1), (1, 2), (2, 3), (0, 1), (0, 1)]
    finally:
        await conn.close()
    store: Store = await Store.connect(scratch)
    try:
        claimed = [c.run_id for c in await store.claim("w", 10, 60.0)]
        assert claimed == [str(r) for r in (runs[0], runs[3], runs[1], runs[2])]
    finally:
        await store.close()


async def test_0003_rolls_back_keeping_old_and_new_rows(scratch: str) -> None:
    """Rolling 0003 back keeps the runs (an unrouted queued run gets a placeholder site; profile runs, which
    0002 cannot hold, go) and brings the old ranking index back; applying 0003 again backfills them again."""
    await asyncio.to_thread(apply_migrations, scratch)
    store: Store = await Store.connect(scratch)
    try:
        board = await store.create_leaderboard("b", "", {"name": "t"}, "mean", ["H100"], secret_seed=7)
        queued, profiled = str(uuid.uuid4()), str(uuid.uuid4())
        await store.create_submission(
            "carol",
            board.id,
            "t",
            "a.py",
            "print(3)",
            "leaderboard",
            [NewRun(queued, "leaderboard", "H100", "k")],
        )
        await store.create_submission(
            "carol", board.id, "t", "b.py", "print(4)", "profile", [NewRun(profiled, "profile", "H100", "k")]
        )
    finally:
        await store.close()

    await asyncio.to_thread(rollback_migrations, scratch, "0002_run_attempts")
    conn = await asyncpg.connect(scratch)
    try:
        rows = await conn.fetch("SELECT id, site, backend, state FROM runs")
        assert [(str(r["id"]), r["site"], r["backend"], r["state"]) for r in rows] == [
            (queued, "unrouted", "none", "QUEUED")
        ]
        assert await conn.fetchval("SELECT count(*) FROM submissions") == 2
        assert await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname = 'runs_ranked'") == 1
    finally:
        await conn.close()

    await asyncio.to_thread(apply_migrations, scratch)
    store = await Store.connect(scratch)
    try:
        [again] = await store.history("carol")
        assert again.run_id == queued and again.leaderboard == "b" and not again.ranked
    finally:
        await store.close()


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_DATABASE_URL": dsn}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "db", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )


async def test_gateway_db_rollback(scratch: str) -> None:
    migrated = await asyncio.to_thread(_cli, scratch, "migrate")
    assert migrated.returncode == 0 and f"applied {len(REVISIONS)} migration(s)" in migrated.stdout, (
        migrated.stderr
    )
    asked = await asyncio.to_thread(_cli, scratch, "rollback")  # no --yes and no one to say yes
    assert asked.returncode == 1
    assert await asyncio.to_thread(applied_migrations, scratch) == REVISIONS

    latest = await asyncio.to_thread(_cli, scratch, "rollback", "--yes")
    assert latest.returncode == 0 and f"rolled back 1 migration(s): {REVISIONS[-1]}" in latest.stdout
    unknown = await asyncio.to_thread(_cli, scratch, "rollback", "--to", "0009_nothing", "--yes")
    assert unknown.returncode == 1 and "no migration '0009_nothing'" in unknown.stdout
    markup = await asyncio.to_thread(_cli, scratch, "rollback", "--to", "[/]x[bold]", "--yes")
    assert markup.returncode == 1 and "no migration '[/]x[bold]'" in markup.stdout, markup.stderr
    to_base = await asyncio.to_thread(_cli, scratch, "rollback", "--to", BASE, "--yes")
    assert to_base.returncode == 0, to_base.stdout + to_base.stderr
    assert " ".join(to_base.stdout.split()).endswith(", ".join(REVISIONS[-2::-1]))
    assert await asyncio.to_thread(applied_migrations, scratch) == []
