"""End-to-end latency of a gateway run on Slurm against floors measured in the same run on the same
connection: a bare `sbatch --wrap true`, and a bare job that starts python and imports torch twice (what
the runner and the evaluator cannot avoid). The ratios show what the gateway itself adds."""

from __future__ import annotations

import asyncio
import statistics
import time

from rich.console import Console

from bench.common import Row, report, vectoradd_test_run
from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.tasks import load_task
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import Gateway

REPEATS = 5
# sbatch --wrap runs /bin/sh: `.` not `source`
TORCH_JOB = '. "$HOME/venv/bin/activate" && python -c "import torch" && python -c "import torch"'
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")


async def bare_sbatch_round_trip(ssh: SSHTransport, wrap: str) -> float:
    start = time.perf_counter()
    argv = ["sbatch", "--parsable", "--gres=gpu:h100:1", "--chdir=/tmp", "--output=/dev/null", "--wrap", wrap]
    job_id = (await ssh.run(argv)).stdout.strip().split(";")[0]
    while True:
        state = await ssh.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], check=False)
        if state.stdout.strip() in TERMINAL:
            elapsed = (time.perf_counter() - start) * 1000
            if state.stdout.strip() != "COMPLETED":
                raise RuntimeError(f"baseline job {job_id} ended {state.stdout.strip()}: {wrap}")
            return elapsed
        await asyncio.sleep(0.05)


async def main(console: Console) -> list[Row]:
    gateway = await Gateway.open(Settings())
    task = load_task(REPO_ROOT / "problems" / "vectoradd")
    code = (REPO_ROOT / "problems" / "vectoradd" / "solutions" / "correct.py").read_text()
    login = gateway.sites.configured["alpha"].login
    assert login is not None
    ssh = SSHTransport("alpha", login)
    floors: list[float] = []
    torch_floors: list[float] = []
    runs: list[float] = []
    try:
        for _ in range(REPEATS):
            floors.append(await bare_sbatch_round_trip(ssh, "true"))
            torch_floors.append(await bare_sbatch_round_trip(ssh, TORCH_JOB))
            start = time.perf_counter()
            result = await gateway.submit(vectoradd_test_run(task, code))
            runs.append((time.perf_counter() - start) * 1000)
            assert result.passed, result.error
    finally:
        await ssh.close()
        await gateway.close()
    run_ms = statistics.median(runs)
    rows = [
        Row(
            "gateway submit (test mode) on alpha",
            "bare sbatch of `true`, polled",
            statistics.median(floors),
            run_ms,
        ),
        Row(
            "gateway submit (test mode) on alpha",
            "bare sbatch importing torch twice, polled",
            statistics.median(torch_floors),
            run_ms,
        ),
    ]
    report("e2e: submission to verified result on Slurm (median)", rows, console)
    return rows
