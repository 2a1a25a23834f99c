"""The HTTP API under load: requests per second, p50 and p99 of the ranking endpoint and of submissions,
served by two API server processes on one database with the load from a third process on loopback, against
the service's own time for the same work; what a rate-limit take and a /metrics scrape cost; and the
limits holding across both servers.

A scratch database gets one leaderboard (vectoradd, on H100 and A100) and a history made in SQL as
bench/ranking_bench.py makes one, smaller: 3,000 users of skewed activity and 60,000 leaderboard-mode
submissions (a public run and a secret rerun each, 70% H100), of which about two thirds rank, so the H100
ranking is drawn from ~27,000 ranked runs. A handful of the users get API tokens. The real app
(gateway.api.create_app) is served by uvicorn in two processes of their own (bench/api_load_server.py, as
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
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import math
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr
from rich.console import Console

from bench.common import Row, report, vacuum_until_all_visible
from gateway.migrate import apply_migrations
from gateway.model import SubmitRequest
from gateway.service import OPERATOR, Gateway
from gateway.settings import REPO_ROOT, Settings
from gateway.store.admin import scratch_database

USERS = 3_000
SUBMISSIONS = 60_000
BOARD = "api-bench"
GPU = "H100"
TOP = 100
TOKENS = 8  # users submitting over the API (round robin over the connections)
CONCURRENCY = 16
UNLIMITED = 10**9  # the API's rate limits, raised so that they do not decide the numbers
BASELINE_CALLS = 100  # ranking queries, timed one after another
DIRECT_SUBMISSIONS = 100  # Gateway.enqueue calls, timed one after another
PHASES: list[
    dict[str, Any]
] = [  # what the client sends: each phase stops at `count` requests or after `seconds`
    {"name": "ranking-1", "kind": "ranking", "concurrency": 1, "count": 300, "seconds": 5, "warmup": 10},
    {
        "name": "ranking-n",
        "kind": "ranking",
        "concurrency": CONCURRENCY,
        "count": 4000,
        "seconds": 8,
        "warmup": CONCURRENCY,
    },
    {"name": "submit-1", "kind": "submit", "concurrency": 1, "count": 150, "seconds": 5, "warmup": 3},
    {
        "name": "submit-n",
        "kind": "submit",
        "concurrency": CONCURRENCY,
        "count": 2000,
        "seconds": 8,
        "warmup": CONCURRENCY,
    },
]
METRICS_PHASE = {
    "name": "metrics",
    "kind": "metrics",
    "concurrency": 1,
    "count": 100,
    "seconds": 5,
    "warmup": 2,
}
LIMIT_SUBMISSIONS = 20  # a minute per user, on the limits' servers
LIMIT_STREAMS = 4  # per client, on the limits' servers
LIMITS_PHASE = {
    "name": "limits",
    "kind": "limits",
    "concurrency": 8,
    "count": 2 * LIMIT_SUBMISSIONS,
    "streams": 2 * LIMIT_STREAMS,
}
SERVERS = 2
SERVER_START_S = 60
PROFILE_LINES = 30
CLIENT_LIMIT_S = 120  # the client is killed if it has not finished by then
MAX_ERROR_SHARE = 0.01
CODE = (REPO_ROOT / "problems" / "vectoradd" / "solutions" / "correct.py").read_text()

# The history, in SQL (far too many rows for the service's API). $1 is the leaderboard's id.
SEED = [
    "SELECT setseed(0.42)",
    f"INSERT INTO users (id, name) SELECT i, 'user-' || i FROM generate_series(1, {USERS}) i",
    "SELECT setval('users_id_seq', (SELECT max(id) FROM users))",
    "INSERT INTO code_blobs (sha256, code) VALUES ('c0de', 'def custom_kernel(data): ...')",
    f"""
    CREATE TEMP TABLE plan AS
    SELECT i AS id, 1 + floor({USERS} * power(random(), 2))::int AS user_id,
           CASE WHEN random() < 0.7 THEN 'H100' ELSE 'A100' END AS gpu,
           random() < 0.70 AS pub_ok, random() < 0.93 AS sec_ok, random() AS skill,
           now() - interval '60 days' + i * (interval '60 days' / {SUBMISSIONS}) AS at
    FROM generate_series(1, {SUBMISSIONS}) i
    """,
    "INSERT INTO submissions "
    "(id, user_id, leaderboard_id, task_name, file_name, code_sha256, mode, created_at) "
    "SELECT id, user_id, $1, 'vectoradd', 'seed-' || id || '.py', 'c0de', 'leaderboard', at FROM plan",
    "SELECT setval('submissions_id_seq', (SELECT max(id) FROM submissions))",
    """
    INSERT INTO runs (id, submission_id, leaderboard_id, user_id, mode, secret, result_key, gpu_type,
                      site, partition, backend, job_id, state, queued_at, started_at, finished_at,
                      passed, score, system_info, error, claims, ranked)
    SELECT gen_random_uuid(), p.id, $1, p.user_id, 'leaderboard', k = 1,
           md5(p.id || ':' || k) || md5(k || ':' || p.id), p.gpu, o.site, lower(p.gpu), 'slurm',
           (100000 + 2 * p.id + k)::text, CASE WHEN o.ok THEN 'COMPLETED' ELSE 'FAILED' END,
           p.at, p.at + interval '20 s', p.at + interval '95 s',
           o.ok, CASE WHEN o.ok THEN round(o.score::numeric, 8)::float8 END,
           jsonb_build_object('gpu', 'NVIDIA ' || p.gpu, 'driver', '550.54.15', 'hostname', o.site || '-n1'),
           CASE WHEN NOT o.ok THEN 'test 3: mismatch at index 17' END,
           1, k = 0 AND p.pub_ok AND p.sec_ok
    FROM plan p, generate_series(0, 1) k,
         LATERAL (SELECT CASE WHEN k = 0 THEN p.pub_ok ELSE p.sec_ok END AS ok,
                         CASE p.gpu WHEN 'H100' THEN 'alpha' ELSE 'beta' END AS site,
                         0.00001 * (1 + 9 * p.skill) * (0.9 + 0.2 * random()) * (1 + 0.01 * k) AS score) o
    """,
    "DROP TABLE plan",
]


async def seed(conn: asyncpg.Connection, board_id: int) -> None:
    for statement in SEED:
        if "$1" in statement:
            await conn.execute(statement, board_id)
        else:
            await conn.execute(statement)
    await conn.execute("VACUUM (ANALYZE) users, submissions, runs")
    await vacuum_until_all_visible(conn)


async def sequential_ms(action: Callable[[int], Awaitable[object]], calls: int, warmup: int) -> list[float]:
    for number in range(warmup):
        await action(-1 - number)
    samples = []
    for number in range(calls):
        start = time.perf_counter()
        await action(number)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p50(samples: list[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[-1] if len(samples) > 1 else math.nan


async def load(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run the client process on ``plan``; its results by phase name."""
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.api_load_client",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await asyncio.wait_for(client.communicate(json.dumps(plan).encode()), CLIENT_LIMIT_S)
    except TimeoutError:
        client.kill()
        await client.wait()
        raise RuntimeError(f"the load generator did not finish in {CLIENT_LIMIT_S} s") from None
    if client.returncode != 0:
        raise RuntimeError(f"the load generator failed (exit {client.returncode})")
    return {phase["name"]: phase for phase in json.loads(out)}


class Servers:
    """API server processes (bench/api_load_server.py) on one database; their URLs and CPU time."""

    def __init__(self) -> None:
        self.processes: list[asyncio.subprocess.Process] = []
        self.urls: list[str] = []

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server processes so far (Linux /proc)."""
        total = 0.0
        for process in self.processes:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return math.nan
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


@contextlib.asynccontextmanager
async def servers(dsn: str, settings: dict[str, Any], profiles: list[Path] | None) -> AsyncIterator[Servers]:
    """SERVERS API server processes with these Settings fields; stopped (stdin closed) at the end."""
    running = Servers()
    try:
        for number in range(SERVERS):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.api_load_server",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            running.processes.append(process)
            profile = str(profiles[number]) if profiles is not None else None
            config = {"dsn": dsn, "settings": settings, "profile": profile}
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(config).encode() + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), SERVER_START_S)
            if not line:
                raise RuntimeError(
                    f"API server process {number + 1} did not start (exit {await process.wait()})"
                )
            running.urls.append(json.loads(line)["url"])
        yield running
    finally:
        for process in running.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in running.processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


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
            async with servers(dsn, unlimited, profiles) as load_servers:
                for phase in [*PHASES, METRICS_PHASE]:  # a client process each
                    cpu, wall = load_servers.cpu_s(), time.perf_counter()
                    results |= await load(plan | {"urls": load_servers.urls, "phases": [phase]})
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
                "SELECT s.id, count(r.id) FILTER (WHERE r.state = 'QUEUED') AS queued, "
                "  s.file_name LIKE 'limit-%' AS limit_phase FROM submissions s "
                "LEFT JOIN runs r ON r.submission_id = s.id WHERE s.leaderboard_id = $1 "
                "  AND (s.file_name LIKE 'sub-%' OR s.file_name LIKE 'limit-%') GROUP BY s.id ORDER BY s.id",
                board.id,
            )
        finally:
            await conn.close()
            await gateway.close()

    ranking_1, ranking_n = results["ranking-1"], results["ranking-n"]
    submit_1, submit_n = results["submit-1"], results["submit-n"]
    scrapes, limits = results["metrics"], results["limits"]
    first = json.loads(ranking_1["first_body"]) if ranking_1["first_body"] else [{"entries": []}]
    shown_top = [entry["run_id"] for entry in first[0]["entries"]]

    def rate(phase: dict[str, Any]) -> float:
        return float(len(phase["latencies_ms"]) / phase["elapsed_s"]) or math.nan

    q50, e50 = p50(query_ms), p50(enqueue_ms)
    rows = [
        Row("service call p50 (Gateway.leaderboard)", "ranking query p50", q50, p50(service_ms)),
        Row("ranking p50, 1 connection", "ranking query p50", q50, p50(ranking_1["latencies_ms"])),
        Row(
            f"ranking p50, {CONCURRENCY} connections",
            "ranking query p50",
            q50,
            p50(ranking_n["latencies_ms"]),
        ),
        Row(
            f"ranking p99, {CONCURRENCY} connections",
            "ranking query p99",
            p99(query_ms),
            p99(ranking_n["latencies_ms"]),
        ),
        Row(
            f"ranking {rate(ranking_n):.0f} req/s, {CONCURRENCY} conn.",
            f"1 / query p50 ({1000 / q50:.0f}/s)",
            q50,
            1000 / rate(ranking_n),
            unit="ms/req",
        ),
        Row("submission p50, 1 connection", "Gateway.enqueue p50", e50, p50(submit_1["latencies_ms"])),
        Row(
            f"submission p50, {CONCURRENCY} connections",
            "Gateway.enqueue p50",
            e50,
            p50(submit_n["latencies_ms"]),
        ),
        Row(
            f"submission p99, {CONCURRENCY} connections",
            "Gateway.enqueue p99",
            p99(enqueue_ms),
            p99(submit_n["latencies_ms"]),
        ),
        Row(
            f"submissions {rate(submit_n):.0f} req/s, {CONCURRENCY} conn.",
            f"1 / enqueue p50 ({1000 / e50:.0f}/s)",
            e50,
            1000 / rate(submit_n),
            unit="ms/req",
        ),
        Row(
            "rate-limit take p50 (Gateway.take_token)", "SELECT 1 round trip p50", p50(ping_ms), p50(take_ms)
        ),
        Row(
            "/metrics scrape p50 over HTTP",
            "old scrape's queries p50 (in process)",
            p50(old_scrape_ms),
            p50(scrapes["latencies_ms"]),
        ),
    ]
    report(
        f"API under load, {SERVERS} server processes: ranking (top {TOP} of {ranked:,} ranked runs), "
        "submissions, limits and metrics over HTTP",
        rows,
        console,
    )

    phases = [*PHASES, METRICS_PHASE]
    warmups = sum(spec.get("warmup", 0) for spec in phases)
    measured = [results[spec["name"]] for spec in phases]
    sent = sum(phase["sent"] for phase in measured) + warmups
    good = sum(len(phase["latencies_ms"]) for phase in measured) + warmups
    good -= sum(phase["warmup_failed"] for phase in measured)
    bad = {
        f"{phase['name']}: {status}": count
        for phase in measured
        for status, count in phase["statuses"].items()
        if status not in ("200", "202")
    } | {f"{phase['name']}: wrong body": phase["wrong"] for phase in measured if phase["wrong"]}
    bad |= {f"{p['name']}: warm-up": p["warmup_failed"] for p in measured if p["warmup_failed"]}
    stored_ok = [row["id"] for row in stored if row["queued"] == (1 if row["limit_phase"] else 2)]
    r1, rn, s1 = (p50(phase["latencies_ms"]) for phase in (ranking_1, ranking_n, submit_1))
    counted = ", ".join(
        f"{phase['name']} {phase['sent']}/{len(phase['latencies_ms'])} in {phase['elapsed_s']:.1f} s"
        for phase in measured
    )
    cpu_text = "; ".join(
        f"{name} servers {server_cpu[name][0] / server_cpu[name][1]:.2f} cores, "
        f"{1000 * server_cpu[name][0] / (phase['sent'] + spec.get('warmup', 0)):.1f} ms CPU/request, "
        f"client {phase['cpu_s'] / phase['elapsed_s']:.2f} cores"
        for spec in phases
        for name, phase in [(spec["name"], results[spec["name"]])]
    )
    submitted = limits["extra"]["submissions"]
    streamed = limits["extra"].get("streams", {})
    accepted, opened = submitted.get("202", 0), streamed.get("200", 0)
    refill = int(limits["extra"]["submissions_s"] * LIMIT_SUBMISSIONS / 60)  # tokens refilled meanwhile
    notes = [
        f"HTTP+JSON overhead, endpoint p50 / query p50: ranking {r1 / q50:.1f}x on 1 connection, "
        f"{rn / q50:.1f}x on {CONCURRENCY}; submission {s1 / e50:.1f}x (vs Gateway.enqueue) on 1 connection.",
        f"Requests (sent/answered as they should): {counted}; "
        f"{sum(bad.values())} otherwise ({json.dumps(bad) if bad else 'none'}).",
        f"{len(stored_ok)} of {len(api_ids)} submissions answered 202 are stored with their queued runs "
        f"({len(stored)} API submissions in the database).",
        f"Limits across {SERVERS} servers ({LIMIT_SUBMISSIONS} submissions/min per user, "
        f"{LIMIT_STREAMS} streams per client): {LIMITS_PHASE['count']} submissions of one user sent at "
        "once answered "
        f"{json.dumps(submitted)} in {limits['extra']['submissions_s']:.2f} s (limit {LIMIT_SUBMISSIONS}"
        f" + {refill} refilled); {LIMITS_PHASE['streams']} streams of one client held at once answered "
        f"{json.dumps(streamed)}: {limits['extra'].get('stream_refusal', '')}",
        f"Load: one client process (httpx), {CONCURRENCY} keep-alive connections, requests to the {SERVERS} "
        f"servers in turn, {TOKENS} users' tokens in turn; each phase stops at its count or its time.",
        f"API rate limits raised to {UNLIMITED:,}/min so the limiter does not decide the numbers (each "
        "request still takes a token from the shared bucket: one statement); no worker (runs stay queued).",
        f"Servers: {SERVERS} processes of uvicorn ({_uvicorn_stack()}, no access log), the service's default "
        f"pool each; baselines timed in this process before the load ({BASELINE_CALLS} queries, "
        f"{DIRECT_SUBMISSIONS} enqueues, {BASELINE_CALLS} round trips and takes, 20 old scrapes, one after "
        "another).",
        f"CPU (servers: both processes over the phase's client run; client: over the phase): {cpu_text}.",
        f"Machine: {os.cpu_count()} CPU cores shared by servers, client and PostgreSQL; load average "
        f"{load_before:.1f} before the bench (other work on the machine competes). Data seeded in "
        f"{seeded_s:.0f} s; the whole bench took {time.perf_counter() - started:.0f} s"
        + (" (profiled: cProfile slows the servers)" if profile else "")
        + ".",
    ]
    console.print("\n".join(notes), highlight=False)
    for number, path in enumerate(profiles or [], 1):
        _print_profile(f"server {number}", path, console)
    profile_dir.cleanup()

    problems = []
    if shown_top != expected_top or len(shown_top) != TOP:
        problems.append("the ranking endpoint's entries are not the store's ranking")
    if sent and (sent - good) / sent > MAX_ERROR_SHARE:
        problems.append(f"{sent - good} of {sent} requests were not answered as they should be")
    if [row["id"] for row in stored] != api_ids or len(stored_ok) != len(api_ids):
        problems.append(
            f"{len(api_ids)} submissions answered 202 but {len(stored_ok)} stored with their runs"
        )
    if not LIMIT_SUBMISSIONS <= accepted <= LIMIT_SUBMISSIONS + refill or set(submitted) - {"202", "429"}:
        problems.append(
            f"{accepted} submissions accepted across the servers, the limit is {LIMIT_SUBMISSIONS}"
        )
    if opened != LIMIT_STREAMS or set(streamed) - {"200", "429"}:
        problems.append(
            f"{opened} streams opened for one client across the servers, the cap is {LIMIT_STREAMS}"
        )
    if problems:
        raise RuntimeError("API load bench FAILED: " + "; ".join(problems))


def _uvicorn_stack() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio loop"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop}, {http}"


def _print_profile(server: str, path: Path, console: Console) -> None:
    if not path.exists():
        console.print(f"{server}: no profile written", highlight=False)
        return
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(PROFILE_LINES)
    console.print(
        f"{server} process, all phases, by own time:\n{out.getvalue()}", highlight=False, markup=False
    )


if __name__ == "__main__":
    asyncio.run(main(Console(width=150)))
