"""Slurm's expected start reaches the gateway from the status round's one squeue: on alpha (one node, two
GPUs) a third GPU job waits for Resources, and SlurmBackend.status reports when Slurm expects it to start
(epoch seconds, as `squeue --start` shows it), with no command beyond that squeue."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.config.settings import Settings
from gateway.config.sites import load_sites
from gateway.core.states import JobState
from gateway.running.backends.base import JobHandle
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.bundle import BundlePaths
from gateway.running.jobscript import TemplateRenderer
from gateway.running.transport.ssh import SSHTransport

pytestmark = pytest.mark.integration


SLEEPER = ["sbatch", "--parsable", "--gres=gpu:h100:1", "--time=1", "--chdir=/tmp", "--output=/dev/null"]


async def test_a_waiting_jobs_expected_start_comes_with_its_state(dev_env: dict[str, str]) -> None:
    site = load_sites(Path(dev_env["GATEWAY_SITES_DIR"]))["alpha"]
    assert site.login is not None
    ssh = SSHTransport(site.name, site.login)
    backend = SlurmBackend(site, ssh, TemplateRenderer(Settings().templates_dir))
    ids: list[str] = []
    try:
        for _ in range(3):  # the node has two GPUs: at least one of three waits
            done = await ssh.run([*SLEEPER, "--job-name=gw-estimate-probe", "--wrap", "sleep 90"])
            ids.append(done.stdout.strip().split(";")[0])
        handles = [JobHandle(f"probe-{i}", i, BundlePaths.under("/tmp", f"probe-{i}")) for i in ids]
        # the backfill scheduler sets the estimate, on its own cycle (bf_interval: 30 s by default)
        deadline = time.monotonic() + 75
        while True:
            before = backend.queries
            states = await backend.status(handles)
            assert backend.queries == before + 1  # the estimate came with the states: one squeue
            estimated = [s for s in states.values() if s.state is JobState.PENDING and s.start_at]
            if estimated:
                break
            assert time.monotonic() < deadline, states
            await asyncio.sleep(0.5)
        waiting = estimated[0]
        assert waiting.reason in ("Resources", "Priority")
        assert waiting.start_at is not None
        # a job ahead has a minute at most (others' jobs, if any, their partition's limit)
        assert time.time() - 5 < waiting.start_at < time.time() + 3600
        running = [s for s in states.values() if s.state is JobState.RUNNING]
        assert all(s.start_at is None for s in running)  # a running job's start is not an estimate
    finally:
        if ids:
            await ssh.run(["scancel", *ids], check=False)
        await ssh.close()
