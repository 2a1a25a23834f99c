"""(b) Load on the controller: slurmctld RPCs (from `sdiag`) while tracking 10 and 100 concurrent jobs for
a minute with the gateway's monitor (ONE squeue per round for every job) against one squeue per job per
round at the same interval (what per-job pollers do), in the same run on two clusters at once: alpha
serves the gateway, beta the baseline, each with its own slurmctld and its own sdiag counters. Jobs are
held, so they stay tracked for the whole minute. Target: the gateway's count does not grow with jobs."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

from rich.console import Console

from bench.common import Row, report
from gateway.config.settings import Settings
from gateway.config.sites import load_sites
from gateway.core.commands import SubprocessRunner
from gateway.devstack.paths import Paths, default_state_dir
from gateway.running.backends.base import JobHandle
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.bundle import BundlePaths
from gateway.running.jobscript import TemplateRenderer
from gateway.running.monitor import Monitor
from gateway.running.transport.ssh import SSHTransport

DURATION_S = 60.0
INTERVAL_S = 1.0  # the gateway monitor's steady interval for a Slurm site (service.py); the baseline's too


def rpc_total(sdiag: str) -> int:
    """Sum of the per-message-type RPC counts in `sdiag` output."""
    section = sdiag.split("Remote Procedure Call statistics by message type", 1)[1]
    section = section.split("Remote Procedure Call statistics by user", 1)[0]
    return sum(int(n) for n in re.findall(r"count:(\d+)", section))


async def held_jobs(local: SubprocessRunner, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        done = await local.run(["sbatch", "--parsable", "--hold", "--output=/dev/null", "--wrap", "true"])
        ids.append(done.stdout.strip().split(";")[0])
    return ids


async def measure(jobs: int, console: Console) -> tuple[int, int]:
    settings, paths = Settings(), Paths(default_state_dir())
    sites = load_sites(settings.sites_dir)
    local = {
        name: SubprocessRunner(env={"SLURM_CONF": str(paths.slurm_conf(name)), "PATH": "/usr/bin:/bin"})
        for name in ("alpha", "beta")
    }
    ids = {name: await held_jobs(runner, jobs) for name, runner in local.items()}
    alpha_login, beta_login = sites["alpha"].login, sites["beta"].login
    assert alpha_login is not None and beta_login is not None
    gateway_ssh, baseline_ssh = SSHTransport("alpha", alpha_login), SSHTransport("beta", beta_login)
    backend = SlurmBackend(sites["alpha"], gateway_ssh, TemplateRenderer(settings.templates_dir))
    monitor = Monitor(backend, min_interval_s=0.2, max_interval_s=INTERVAL_S)
    await gateway_ssh.run(["true"])
    await baseline_ssh.run(["true"])
    for runner in local.values():
        await runner.run(["sdiag", "-r"])
    started = time.monotonic()

    async def baseline() -> None:
        while time.monotonic() - started < DURATION_S:
            round_start = time.monotonic()
            for job_id in ids["beta"]:
                await baseline_ssh.run(["squeue", "-h", "-j", job_id, "-o", "%T"], check=False)
            await asyncio.sleep(max(0.0, INTERVAL_S - (time.monotonic() - round_start)))

    waits = [
        asyncio.create_task(monitor.wait(JobHandle(f"r{j}", j, BundlePaths.under("/w", f"r{j}"))))
        for j in ids["alpha"]
    ]
    await baseline()
    counts = [rpc_total((await local[name].run(["sdiag"])).stdout) for name in ("alpha", "beta")]
    for task in waits:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await monitor.close()
    for name, runner in local.items():
        await runner.run(["scancel", *ids[name]])
    await gateway_ssh.close()
    await baseline_ssh.close()
    console.print(
        f"  {jobs} jobs: gateway {monitor.rounds} rounds, {counts[0]} RPCs; per-job polling {counts[1]} RPCs"
    )
    return counts[0], counts[1]


async def main(console: Console) -> list[Row]:
    console.print(f"slurmctld_load: tracking held jobs for {DURATION_S:.0f} s at each size")
    gateway_10, baseline_10 = await measure(10, console)
    gateway_100, baseline_100 = await measure(100, console)
    rows = [
        Row("gateway monitor, 10 jobs", "one squeue per job per round", baseline_10, gateway_10, "RPCs"),
        Row("gateway monitor, 100 jobs", "one squeue per job per round", baseline_100, gateway_100, "RPCs"),
        Row(
            "gateway monitor, 100 jobs", "gateway monitor, 10 jobs (growth)", gateway_10, gateway_100, "RPCs"
        ),
    ]
    report(f"slurmctld_load: slurmctld RPCs in {DURATION_S:.0f} s (target: last row ~1.00x)", rows, console)
    return rows
