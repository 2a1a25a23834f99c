"""Claim-dispatch-record throughput of the durable queue with 1, 2 and 4 worker processes.

2,000 runs are queued in a scratch database; each worker process runs gateway.service.queue_worker.Worker
(claims with SKIP LOCKED, heartbeats, events, the recorded result) against an in-process local backend whose
jobs take a fixed time and return a signed result, so what is measured is the queue and the service, not a
cluster. The baseline is one worker; the ratio says how throughput scales as workers are added.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncGenerator, Sequence

import asyncpg
from rich.console import Console

from bench.common import Row, report
from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.site_parts import IsolationConfig, PartitionConfig
from gateway.config.sites import KeepBundles, SiteConfig
from gateway.config.tasks import load_task
from gateway.core.states import JobState
from gateway.running.backends.base import JobHandle, JobRequest, JobStatus, PartitionLoad
from gateway.running.bundle import BundlePaths
from gateway.service.facade import OPERATOR, Gateway
from gateway.service.model import SubmitRequest
from gateway.store.admin import scratch_database
from gateway.store.migrate import apply_migrations
from harness.protocol import load_key_hex, sign_result

RUNS = 2000
JOB_S = 0.25  # how long each job "runs" on the local backend (a real one takes seconds)
CONCURRENCY = 16  # runs each worker follows at once: one worker tops out at CONCURRENCY / JOB_S runs/s
WORKERS = (1, 2, 4)


class InstantBackend:
    """A local backend whose jobs finish after JOB_S with a signed, passing result."""

    name = "local"

    def __init__(self) -> None:
        self._done: dict[str, tuple[float, bytes]] = {}

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]:
        handles = []
        for request in requests:
            job_id = uuid.uuid4().hex[:12]
            body = {
                "version": 1,
                "run_id": request.run_id,
                "mode": "test",
                "system": {"hostname": "bench"},
                "phases": [
                    {
                        "name": "test",
                        "exit_code": 0,
                        "timed_out": False,
                        "duration_s": JOB_S,
                        "kv": {
                            "check": "pass",
                            "test-count": "1",
                            "test.0.spec": "n: 1",
                            "test.0.status": "pass",
                        },
                        "stdout_tail": "",
                        "stderr_tail": "",
                    }
                ],
                "error": None,
            }
            raw = json.dumps(sign_result(body, load_key_hex(request.key_hex))).encode()
            self._done[job_id] = (time.monotonic() + JOB_S, raw)
            handles.append(JobHandle(request.run_id, job_id, BundlePaths.under("/bench", request.run_id)))
        return handles

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        now = time.monotonic()
        return {
            h.job_id: JobStatus(JobState.COMPLETED if self._done[h.job_id][0] <= now else JobState.RUNNING)
            for h in handles
        }

    async def cancel(self, handles: Sequence[JobHandle]) -> None:
        return None

    async def remove(self, run_ids: Sequence[str], keep: KeepBundles = "none") -> None:
        return None

    async def bundles(self) -> dict[str, float]:
        return {}

    async def find(self, requests: Sequence[JobRequest]) -> dict[str, JobHandle]:
        return {}

    async def load(self) -> dict[str, PartitionLoad]:
        return {"instant": PartitionLoad("instant", available=True, pending=0, running=0, state="up")}

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        return self._done[handle.job_id][1]

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 65536) -> str:
        return ""

    async def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        # the job's output: the runner's result line once it has finished
        await asyncio.sleep(max(0.0, self._done[handle.job_id][0] - time.monotonic()))
        yield "[harness] result written"

    async def close(self) -> None:
        return None


def _instant(_site: SiteConfig) -> InstantBackend:
    return InstantBackend()


# one site of one GPU type, whose backend is the instant one (a leaderboard never ranks the gateway's own
# machine); unconfined, it takes test runs only
SITES = {
    "bench": SiteConfig(
        name="bench",
        submit_via="local",
        workdir="/bench",
        partitions=[PartitionConfig(name="instant", gpu_type="BENCH", max_jobs=RUNS)],
        isolation=IsolationConfig(kind="none", unconfined_modes=["test"]),
    )
}


async def _worker_process(dsn: str) -> None:
    """One worker process: process runs until none is left unfinished, then exit."""
    from gateway.store import Store

    store = await Store.connect(dsn, max_size=4)
    gateway = Gateway(Settings(database_url=dsn), SITES, store, backend_factory=_instant)
    stop = asyncio.Event()
    worker = gateway.worker(concurrency=CONCURRENCY)

    async def stop_when_done() -> None:
        assert gateway.store is not None
        while await gateway.store.queue_depth():  # noqa: ASYNC110 (polls the database)
            await asyncio.sleep(0.2)
        stop.set()

    watcher = asyncio.create_task(stop_when_done())
    await worker.run(stop)
    watcher.cancel()
    await gateway.close()


async def _queue(dsn: str) -> None:
    # one user queues every run before the workers start: the per-user limits are raised out of the way
    settings = Settings(database_url=dsn, max_unfinished_runs_per_user=RUNS, submissions_per_minute=RUNS)
    from gateway.store import Store

    gateway = Gateway(settings, SITES, await Store.connect(dsn), backend_factory=_instant)
    task = load_task(REPO_ROOT / "problems" / "vectoradd")
    try:
        await gateway.boards.create_leaderboard("queue-bench", task, ["BENCH"], caller=OPERATOR)
        request = SubmitRequest(
            code="x = 1\n", file_name="k.py", user="bench", leaderboard="queue-bench", mode="test", admin=True
        )
        for start in range(0, RUNS, 100):
            await asyncio.gather(*(gateway.enqueue(request) for _ in range(start, min(start + 100, RUNS))))
    finally:
        await gateway.close()


async def _throughput(base_dsn: str, workers: int) -> float:
    """Runs per second, from starting the workers to the last run recorded."""
    async with scratch_database(base_dsn, "bench_queue") as dsn:
        await asyncio.to_thread(apply_migrations, dsn)
        await _queue(dsn)
        env = os.environ | {"GATEWAY_WORKER_HEARTBEAT_S": "1", "GATEWAY_WORKER_STALE_S": "30"}
        start = time.perf_counter()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.queue_throughput", "--worker", dsn, env=env
            )
            for _ in range(workers)
        ]
        codes = [await proc.wait() for proc in procs]
        elapsed = time.perf_counter() - start
        conn = await asyncpg.connect(dsn)
        try:
            recorded = await conn.fetchval(
                "SELECT count(*) FROM runs WHERE passed AND finished_at IS NOT NULL"
            )
            finished_events = await conn.fetchval("SELECT count(*) FROM run_events WHERE kind = 'finished'")
        finally:
            await conn.close()
        assert codes == [0] * workers, f"a worker failed: {codes}"
        assert recorded == RUNS and finished_events == RUNS, (recorded, finished_events)
        return RUNS / elapsed


async def main(console: Console) -> None:
    dsn = Settings().database_dsn()
    assert dsn, "the dev stack's database is needed (make up)"
    rates = {n: await _throughput(dsn, n) for n in WORKERS}
    # rows in "ms per run" so the table's ratio is throughput(n) / throughput(1)
    rows = [
        Row(f"{n} worker(s), {RUNS} runs", "1 worker", 1000 / rates[1], 1000 / rates[n], unit="ms/run")
        for n in WORKERS
    ]
    report(
        f"queue throughput: claim, dispatch, record ({JOB_S * 1000:.0f} ms jobs, {CONCURRENCY} per worker; "
        + ", ".join(f"{n}: {rates[n]:.0f} runs/s" for n in WORKERS)
        + ")",
        rows,
        console,
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        asyncio.run(_worker_process(sys.argv[2]))
    else:
        asyncio.run(main(Console(width=150)))
