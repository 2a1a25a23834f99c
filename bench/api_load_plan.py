"""What bench/api_load.py loads and sends: the history it seeds (in SQL, far too many rows for the service's
API), the phases the client process runs, and the limits and sizes of the bench."""

from __future__ import annotations

from typing import Any

import asyncpg

from bench.common import vacuum_until_all_visible
from gateway.config.settings import REPO_ROOT

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
        "count": 8000,
        "seconds": 8,
        "warmup": CONCURRENCY,
    },
    {  # If-None-Match with the ETag of ranking-1's answer: 304s
        "name": "revalidate-n",
        "kind": "revalidate",
        "concurrency": CONCURRENCY,
        "count": 8000,
        "seconds": 5,
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
# The same loads on servers that keep nothing between requests (GATEWAY_API_RANKING_CACHE=false,
# GATEWAY_API_TOKEN_CACHE_S=0): each ranking read queries the database, each request looks its token up.
UNCACHED = {"api_ranking_cache": False, "api_token_cache_s": 0}
UNCACHED_PHASES: list[dict[str, Any]] = [
    PHASES[1] | {"name": "ranking-n-uncached", "count": 4000},
    PHASES[4] | {"name": "submit-n-uncached"},
]
# Issue 21's figures of before these caches (httpx client, 16 connections) and its targets; the machine is
# shared, so each target is also shown scaled by this run's ranking query (unchanged code) against that run's
TODAY_RANKING_RPS = 102
TODAY_SUBMIT_RPS = 93
TODAY_QUERY_MS = 10.3  # the ranking query alone, that run
TARGET_RANKING_P99_MS = 25.0
TARGET_RANKING_X = 5.0  # requests per second over today's
TARGET_SUBMIT_P99_MS = 100.0
TARGET_SUBMIT_X = 3.0
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
