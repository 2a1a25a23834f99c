"""Warm pools on the dev stack's alpha: a pool job started in its debug partition takes runs one after
another (routing prefers it), each run keeps its own GPU-time record, the cap holds, the pool ends itself
when idle and its folder goes; a pool that Slurm kills under a run loses nothing: the run goes again once,
as a job of its own, and is recorded once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config.settings import Settings
from gateway.config.tasks import load_task
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import Gateway
from gateway.service.model import SubmitRequest
from gateway.store import PoolRecord
from tests.conftest import PROBLEMS, solution
from tests.integration.site_files import dev_site_text, write_site

pytestmark = pytest.mark.integration
POOL = '    warm_pool: {max_jobs: 1, idle_s: 8, max_lifetime: "00:05:00"}\n'
SLOW = (
    "import time\nfrom task import input_t, output_t\n\n\n"
    "def custom_kernel(data: input_t) -> output_t:\n    time.sleep(2)\n    a, b = data\n    return a + b\n"
)


@pytest.fixture
async def gateway(
    stack_settings: Settings, dev_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[Gateway]:
    """alpha alone, its debug partition keeping one warm pool."""
    text = dev_site_text("alpha", Path(dev_env["GATEWAY_DEV_DIR"]))
    marker = "  - name: debug\n"
    assert marker in text
    head, tail = text.split(marker)
    # a run's limit of 2 minutes, so a pool job of 5 (the partition's MaxTime) takes runs for 3
    tail = tail.replace('time_limit: "00:05:00"', 'time_limit: "00:02:00"', 1)
    write_site(tmp_path / "sites", "alpha", head + marker + POOL + tail)
    gw = await Gateway.open(stack_settings.model_copy(update={"sites_dir": tmp_path / "sites"}))
    await gw.pools.sweep()  # pools an earlier session left in the shared database, their jobs gone
    yield gw
    await gw.close()


def vectoradd(code: str, file_name: str) -> SubmitRequest:
    return SubmitRequest(
        code=code,
        file_name=file_name,
        user="pooled",
        task=load_task(PROBLEMS / "vectoradd"),
        gpu_type="H100",
        mode="test",
        admin=True,
    )


async def pool_where(gw: Gateway, pool_id: str, wanted: str, timeout_s: float) -> PoolRecord | None:
    """The pool once its state is ``wanted`` (None once it has ended, when ``wanted`` is "ended")."""
    assert gw.store is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        live = {p.id: p for p in await gw.store.live_pools("alpha")}
        if wanted == "ended" and pool_id not in live:
            return None
        if pool_id in live and live[pool_id].state == wanted:
            return live[pool_id]
        await asyncio.sleep(0.2)
    pytest.fail(f"pool {pool_id} not {wanted} after {timeout_s} s")


async def ready_pool(gw: Gateway) -> PoolRecord:
    """A pool started in alpha's debug partition, once it is ready; the partition's cap (one) then full."""
    site = gw.sites.configured["alpha"]
    debug = site.partition("debug")
    assert debug is not None
    pool_id = await gw.pools.grow(site, debug, 1)
    assert pool_id is not None
    assert await gw.pools.grow(site, debug, 1) is None  # its cap is one pool job, every worker together
    pool = await pool_where(gw, pool_id, "ready", 90)
    assert pool is not None and pool.job_id is not None
    return pool


async def site_ssh(gw: Gateway) -> SSHTransport:
    login = gw.sites.configured["alpha"].login
    assert login is not None
    return SSHTransport("alpha", login)


async def test_a_pool_takes_runs_one_after_another_keeps_each_runs_gpu_time_and_ends_when_idle(
    gateway: Gateway,
) -> None:
    assert gateway.store is not None
    pool = await ready_pool(gateway)
    pool_id, site = pool.id, gateway.sites.configured["alpha"]

    passed = await gateway.submit(vectoradd(solution("vectoradd", "correct.py"), "correct.py"))
    assert passed.passed, passed.error or passed.output_tail
    assert passed.partition == "debug" and passed.job_id == f"{pool.job_id}:{pool_id}"
    assert any(e.startswith(f"handed to warm pool {pool_id}") for e in passed.events)
    failed = await gateway.submit(vectoradd(solution("vectoradd", "wrong.py"), "wrong.py"))
    assert (
        not failed.passed and failed.job_id == f"{pool.job_id}:{pool_id}"
    )  # the pool goes on after a failure
    assert failed.error and "mismatch" in failed.error.lower(), failed.error

    for report in (passed, failed):
        record = await gateway.store.get_run(report.run_id)
        assert record is not None and record.pool_id == pool_id
        assert record.gpu_seconds is not None and 0 < record.gpu_seconds < 60
    done = await gateway.store.pool_of_run(failed.run_id)
    assert done is not None and done.runs_done == 2 and done.busy_s > 0

    assert await pool_where(gateway, pool_id, "ended", 45) is None  # idle for 8 s: it ended itself
    ssh = await site_ssh(gateway)
    try:
        workdir = await gateway.sites.runtime(site).backend.bundles()  # the sweep's view: run folders only
        assert passed.run_id not in workdir and failed.run_id not in workdir
        gone = await ssh.run(["sh", "-c", f'test ! -e "$HOME/alpha-runs/{pool_id}"'], check=False)
        assert gone.exit_code == 0, "the ended pool's folder is still on the site"
    finally:
        await ssh.close()


async def test_a_pool_killed_under_its_run_loses_nothing_the_run_goes_again_as_a_job(
    gateway: Gateway,
) -> None:
    assert gateway.store is not None
    pool = await ready_pool(gateway)
    pool_id = pool.id
    ssh = await site_ssh(gateway)

    async def kill_the_pool_once_it_runs_something() -> None:
        taken = f'ls "$HOME/alpha-runs/{pool_id}/taken"'
        while not (await ssh.run(["sh", "-c", taken], check=False)).stdout.strip():
            await asyncio.sleep(0.1)
        await ssh.run(["scancel", str(pool.job_id)])

    try:
        killer = asyncio.create_task(kill_the_pool_once_it_runs_something())
        report = await gateway.submit(vectoradd(SLOW, f"slow-{uuid.uuid4().hex[:6]}.py"))
        await killer
    finally:
        await ssh.close()
    assert report.passed, report.error or report.output_tail
    assert report.attempt == 2 and ":" not in str(report.job_id)  # again, as a job of its own
    assert any("warm pool" in e and "starting it again" in e for e in report.events), report.events
    record = await gateway.store.get_run(report.run_id)
    assert record is not None and record.passed and record.attempt == 2
    assert await pool_where(gateway, pool_id, "ended", 30) is None
