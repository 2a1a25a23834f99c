"""The HTTP API under load: requests per second, p50 and p99 of the ranking endpoint and of submissions,
served by two API server processes on one database with the load from a third process on loopback, against
the service's own time for the same work; what a rate-limit take and a /metrics scrape cost; and the
limits holding across both servers.

A scratch database gets one leaderboard (vectoradd, on H100 and A100) and a history made in SQL as
bench/ranking_bench.py makes one, smaller: 3,000 users of skewed activity and 60,000 leaderboard-mode
submissions (a public run and a secret rerun each, 70% H100), of which about two thirds rank, so the H100
ranking is drawn from ~27,000 ranked runs. A handful of the users get API tokens. The real app
(gateway.http.api.create_app) is served by uvicorn in two processes of their own (bench/api_load_server.py, as
two `gateway serve` would) on 127.0.0.1, with the API's rate limits raised out of the way (each request
still takes its token from the shared bucket) and no worker: submissions stay queued, so what is measured
is the API's enqueue path, not Slurm. bench/api_load_client.py, a process of its own, sends the requests
with httpx to the two servers in turn: first one connection, then CONCURRENCY, each phase bounded by a
count and a time.

Baselines, timed sequentially in this process before the load: the ranking query itself (Store.ranking,
top 100 on H100), Gateway.enqueue called directly, a database round trip (SELECT 1) against one token
take, and the queries the /metrics scrape ran at each scrape before it cached its whole-history families
(stats, runs by state, site health) against a scrape now over HTTP. Every answer must be 200/202 (the
ranking byte for byte the same, and the store's); more than 1% otherwise fails the bench, and every
submission answered 202 must be in the database with its queued runs.

Then two more server processes with real limits (LIMIT_SUBMISSIONS a minute per user, LIMIT_STREAMS
streams per client): twice as many submissions of one user, and twice as many streams of one client, sent
across both, must yield exactly the limit (plus what refilled meanwhile), not twice it.

`python -m bench.api_load --profile` also prints where the servers' processes spent their time (all phases).

The seeded history and the phases are bench/api_load_plan.py, the server and client processes
bench/api_load_processes.py, the table, notes and checks bench/api_load_report.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr
from rich.console import Console

from bench.api_load_plan import (
    BASELINE_CALLS,
    BOARD,
    CODE,
    DIRECT_SUBMISSIONS,
    GPU,
    LIMIT_STREAMS,
    LIMIT_SUBMISSIONS,
    LIMITS_PHASE,
    METRICS_PHASE,
    PHASES,
    SERVERS,
    TOKENS,
    TOP,
    UNCACHED,
    UNCACHED_PHASES,
    UNLIMITED,
    seed,
)
from bench.api_load_processes import load, servers
from bench.api_load_report import LoadRun, show
from gateway.config.settings import Settings
from gateway.service.facade import OPERATOR, Gateway
from gateway.service.model import SubmitRequest
from gateway.store.admin import scratch_database
from gateway.store.migrate import apply_migrations


async def sequential_ms(action: Callable[[int], Awaitable[object]], calls: int, warmup: int) -> list[float]:
    for number in range(warmup):
        await action(-1 - number)
    samples = []
    for number in range(calls):
        start = time.perf_counter()
        await action(number)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def main(console: Console) -> None:
    admin = Settings().database_dsn()
    if admin is None:
        console.print("API load bench skipped: no database (start the dev stack)")
        return
    profile = "--profile" in sys.argv
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    profile_dir = tempfile.TemporaryDirectory(prefix="api-load-profile-")
    profiles = [Path(profile_dir.name) / f"server-{n + 1}.prof" for n in range(SERVERS)] if profile else None
    async with scratch_database(admin, "bench_api") as dsn:
        await asyncio.to_thread(apply_migrations, dsn)
        unlimited = {
            "api_requests_per_minute": UNLIMITED,
            "api_submissions_per_minute": UNLIMITED,
            # counted in the enqueue's transaction as always, but never refusing: user-1's runs stay queued
            "max_unfinished_runs_per_user": UNLIMITED,
            "submissions_per_minute": UNLIMITED,
        }
        settings = Settings(database_url=SecretStr(dsn), **unlimited)
        gateway = await Gateway.open(settings)
        conn = await asyncpg.connect(dsn)
        try:
            task = await gateway.boards.load_task_directory("vectoradd")
            board = await gateway.boards.create_leaderboard(BOARD, task, [GPU, "A100"], caller=OPERATOR)
            await seed(conn, board.id)
            tokens = [
                await gateway.accounts.create_token(f"user-{i}", caller=OPERATOR)
                for i in range(1, TOKENS + 1)
            ]
            limit_token = await gateway.accounts.create_token("limit-user", caller=OPERATOR)
            ranked = await conn.fetchval(
                "SELECT count(*) FROM runs WHERE ranked AND gpu_type = $1 AND leaderboard_id = $2",
                GPU,
                board.id,
            )
            seeded_s = time.perf_counter() - started
            store = gateway.store
            assert store is not None

            # baselines: the service's own time for the same work, one call after another
            async def query(_: int) -> object:
                return await store.ranking(board.id, GPU, TOP)

            async def service_call(_: int) -> object:
                return await gateway.boards.leaderboard(BOARD, recent=0, top=TOP, gpu=GPU, caller=OPERATOR)

            async def enqueue(number: int) -> object:
                request = SubmitRequest(
                    code=CODE + f"\n# direct {number}\n",
                    file_name=f"direct-{number}.py",
                    user="user-1",
                    leaderboard=BOARD,
                    gpu_type=GPU,
                    mode="leaderboard",
                )
                return await gateway.enqueue(request)

            async def round_trip(_: int) -> object:
                await gateway.ping()
                return None

            async def take(number: int) -> object:
                return await gateway.limits.take_token(f"address:bench-{number % 50}", UNLIMITED)

            async def old_scrape(_: int) -> object:  # what each scrape read before the cache
                return (
                    await gateway.stats(3600),
                    await gateway.runs_by_state(),
                    await gateway.sites.health(),
                )

            query_ms = await sequential_ms(query, BASELINE_CALLS, 10)
            service_ms = await sequential_ms(service_call, BASELINE_CALLS, 10)
            enqueue_ms = await sequential_ms(enqueue, DIRECT_SUBMISSIONS, 3)
            ping_ms = await sequential_ms(round_trip, BASELINE_CALLS, 10)
            take_ms = await sequential_ms(take, BASELINE_CALLS, 10)
            old_scrape_ms = await sequential_ms(old_scrape, 20, 2)
            expected_top = [entry.run_id for entry in await store.ranking(board.id, GPU, TOP)]

            plan = {
                "ranking_path": f"/api/leaderboards/{BOARD}/ranking",
                "gpu": GPU,
                "leaderboard": BOARD,
                "tokens": tokens,
                "limit_token": limit_token,
                "code": CODE,
            }
            results: dict[str, dict[str, Any]] = {}
            server_cpu: dict[str, tuple[float, float]] = {}  # phase -> (CPU s of the servers, wall s)
            # the baseline first: servers that keep nothing between requests, on the same data
            for settings_of, phases, profiled in (
                (unlimited | UNCACHED, UNCACHED_PHASES, None),
                (unlimited, [*PHASES, METRICS_PHASE], profiles),
            ):
                async with servers(dsn, settings_of, profiled) as load_servers:
                    for phase in phases:  # a client process each
                        cpu, wall = load_servers.cpu_s(), time.perf_counter()
                        etag = results.get("ranking-1", {}).get("extra", {}).get("etag", "")
                        sent = plan | {"urls": load_servers.urls, "phases": [phase], "etag": etag}
                        results |= await load(sent)
                        server_cpu[phase["name"]] = (load_servers.cpu_s() - cpu, time.perf_counter() - wall)
            limited = {
                "api_requests_per_minute": UNLIMITED,
                "api_submissions_per_minute": LIMIT_SUBMISSIONS,
                "api_max_streams_per_client": LIMIT_STREAMS,
            }
            async with servers(dsn, limited, None) as limit_servers:
                results |= await load(plan | {"urls": limit_servers.urls, "phases": [LIMITS_PHASE]})

            # what the client was told was stored must be stored: each submission with its queued runs
            api_ids = sorted(i for phase in results.values() for i in phase["submission_ids"])
            stored = await conn.fetch(
                "SELECT s.public_id AS id, count(r.id) FILTER (WHERE r.state = 'QUEUED') AS queued, "
                "  s.file_name LIKE 'limit-%' AS limit_phase FROM submissions s "
                "LEFT JOIN runs r ON r.submission_id = s.id WHERE s.leaderboard_id = $1 "
                "  AND (s.file_name LIKE 'sub-%' OR s.file_name LIKE 'limit-%') GROUP BY s.id ORDER BY s.id",
                board.id,
            )
        finally:
            await conn.close()
            await gateway.close()
    run = LoadRun(
        query_ms,
        service_ms,
        enqueue_ms,
        ping_ms,
        take_ms,
        old_scrape_ms,
        expected_top,
        results,
        server_cpu,
        stored,
        api_ids,
        ranked,
        seeded_s,
        started,
        load_before,
        profiles,
    )
    problems = show(run, console)
    profile_dir.cleanup()
    if problems:
        raise RuntimeError("API load bench FAILED: " + "; ".join(problems))


if __name__ == "__main__":
    asyncio.run(main(Console(width=150)))
