"""End-to-end latency of a gateway run on Slurm vs the floor: a bare `sbatch --wrap` job of the same
harness work, followed by polling squeue on the same connection. The ratio is the gateway's overhead."""

from __future__ import annotations

import asyncio
import time
import uuid

from rich.console import Console

from bench.common import Row, report
from gateway.service import Gateway, SubmitRequest
from gateway.settings import REPO_ROOT, Settings
from gateway.tasks import load_task
from gateway.transport.ssh import SSHTransport

REPEATS = 5


async def bare_sbatch_round_trip(ssh: SSHTransport) -> float:
    start = time.perf_counter()
    done = await ssh.run(["sbatch", "--parsable", "--gres=gpu:h100:1", "--wrap", "true"])
    job_id = done.stdout.strip().split(";")[0]
    while True:
        state = await ssh.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], check=False)
        if state.stdout.strip() in ("COMPLETED", "FAILED", "CANCELLED"):
            return (time.perf_counter() - start) * 1000
        await asyncio.sleep(0.05)


async def main(console: Console) -> list[Row]:
    settings = Settings()
    gateway = await Gateway.open(settings)
    task = load_task(REPO_ROOT / "problems" / "vectoradd")
    code = (REPO_ROOT / "problems" / "vectoradd" / "solutions" / "correct.py").read_text()
    login = gateway.sites["alpha"].login
    assert login is not None
    ssh = SSHTransport("alpha", login)
    try:
        floors, runs = [], []
        for _ in range(REPEATS):
            floors.append(await bare_sbatch_round_trip(ssh))
            start = time.perf_counter()
            result = await gateway.submit(
                SubmitRequest(
                    code=code,
                    file_name="correct.py",
                    user="bench",
                    task=task,
                    leaderboard=f"bench-{uuid.uuid4().hex[:6]}",
                    site="alpha",
                    gpu_type="H100",
                    mode="test",
                )
            )
            runs.append((time.perf_counter() - start) * 1000)
            assert result.passed, result.error
    finally:
        await ssh.close()
        await gateway.close()
    floors.sort()
    runs.sort()
    rows = [
        Row(
            "gateway submit, test mode, alpha (median)",
            "bare sbatch --wrap true + squeue poll",
            floors[len(floors) // 2],
            runs[len(runs) // 2],
        )
    ]
    report("e2e: submission to verified result on Slurm", rows, console)
    return rows
