"""The durable queue against the real stack: workers killed with SIGKILL at random points of their runs,
PostgreSQL restarted under a running worker. Every run is recorded exactly once and no Slurm job is
submitted twice."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.config.sites import load_sites
from gateway.config.tasks import load_task
from gateway.devstack import DevStack
from gateway.devstack import postgres as dev_postgres
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import Gateway
from gateway.service.model import SubmitRequest
from gateway.store import Store
from tests.conftest import PROBLEMS, solution
from tests.integration.accounting import finished_jobs

pytestmark = pytest.mark.integration
KILLS = 20
RUNS = 12
# short claims so takeovers happen within the test; the defaults are 2 s and 45 s
FAST_CLAIMS = {"GATEWAY_WORKER_HEARTBEAT_S": "0.5", "GATEWAY_WORKER_STALE_S": "3"}


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "gateway"), "worker", "--concurrency", "6"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | env | FAST_CLAIMS,
        )


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def enqueue_runs(gateway: Gateway, board: str, count: int) -> list[str]:
    task = load_task(PROBLEMS / "vectoradd")
    run_ids = []
    for n in range(count):
        submission = await gateway.enqueue(
            SubmitRequest(
                code=solution("vectoradd", "correct.py"),
                file_name="correct.py",
                user=f"takeover-{n % 3}",
                task=task,
                leaderboard=board,
                site="alpha",
                gpu_type="H100",
                mode="test",
                admin=True,
            )
        )
        run_ids += submission.run_ids
    return run_ids


async def wait_finished(store: Store, run_ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = [await store.get_run(run_id) for run_id in run_ids]
        if all(run is not None and run.finished_at is not None for run in runs):
            return
        assert time.monotonic() < deadline, [r.state for r in runs if r is not None and r.finished_at is None]
        await asyncio.sleep(0.5)


async def slurm_jobs_named(run_ids: list[str]) -> Counter[str]:
    """How many Slurm jobs alpha ran for each run (by the job name gw-<run id>[-attempt])."""
    alpha = load_sites(REPO_ROOT / "site_configs")["alpha"]
    assert alpha.login is not None
    ssh = SSHTransport("alpha", alpha.login)
    try:
        counts: Counter[str] = Counter()
        for run_id in run_ids:
            counts[run_id] = len(await finished_jobs(ssh, ["JobIDRaw", "JobName"], f"gw-{run_id}"))
        return counts
    finally:
        await ssh.close()


async def test_workers_killed_at_random_points_20_times_record_every_run_once(
    gateway: Gateway, dev_env: dict[str, str], workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    store = gateway.store
    assert store is not None
    run_ids = await enqueue_runs(gateway, f"takeover-{uuid.uuid4().hex[:8]}", RUNS)
    log = tmp_path / "workers.log"
    rng = random.Random(5)  # the kill points differ run to run of the suite only through timing
    for _ in range(KILLS):
        worker = start_worker(dev_env, log)
        workers.append(worker)
        await asyncio.sleep(rng.uniform(0.5, 4.0))  # before, during or after submit, follow or record
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    workers.append(start_worker(dev_env, log))  # the survivor finishes what the others left
    await wait_finished(store, run_ids, timeout_s=240)

    records = [await store.get_run(run_id) for run_id in run_ids]
    failed = [(r.run_id, r.error) for r in records if r is not None and not r.passed]
    assert not failed, f"{failed}\n{log.read_text()[-3000:]}"
    finished = Counter(e.run_id for e in await store.events(run_ids) if e.kind == "finished")
    assert finished == Counter(dict.fromkeys(run_ids, 1)), "each run is recorded exactly once"
    assert all(r is not None and r.job_id for r in records)
    assert sum(r.claims for r in records if r is not None) > len(run_ids), "no run was ever taken over"
    jobs = await slurm_jobs_named(run_ids)
    assert jobs == Counter(dict.fromkeys(run_ids, 1)), "a run was submitted to Slurm twice"


async def test_postgres_restarted_under_a_running_worker_the_run_completes(
    gateway: Gateway, dev_env: dict[str, str], workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    store = gateway.store
    assert store is not None
    [run_id] = await enqueue_runs(gateway, f"pgrestart-{uuid.uuid4().hex[:8]}", 1)
    log = tmp_path / "worker.log"
    worker = start_worker(dev_env, log)
    workers.append(worker)
    deadline = time.monotonic() + 60
    while (run := await store.get_run(run_id)) is None or run.job_id is None:
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.2)
    paths = DevStack().paths
    await asyncio.to_thread(dev_postgres.stop_part, paths)
    await asyncio.sleep(2)  # the job runs on; the worker's statements and LISTEN fail meanwhile
    await asyncio.to_thread(dev_postgres.start, paths)
    await wait_finished(store, [run_id], timeout_s=120)
    record = await store.get_run(run_id)
    assert record is not None and record.passed, f"{record}\n{log.read_text()[-3000:]}"
    assert worker.poll() is None, "the worker survived the restart"
    assert record.claims == 1, "the same worker finished it"
    assert (await slurm_jobs_named([run_id]))[run_id] == 1
