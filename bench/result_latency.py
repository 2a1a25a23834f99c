"""(c) Time from the harness writing its final result to the gateway holding it (verified): the result
pushed over the tail of the job's output against, in the same run, the safety net alone (a site that
gives no channel to streams: one squeue per round, then fetch). Measured against result.json's mtime on
the site's file system (the same clock here). Target: p95 <= 250 ms."""

from __future__ import annotations

import statistics

from rich.console import Console

from bench.common import Row, report, vectoradd_test_run
from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.tasks import load_task
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import Gateway

PUSHED_RUNS = 20
POLLED_RUNS = 8


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


async def latencies(gateway: Gateway, runs: int) -> list[float]:
    task = load_task(REPO_ROOT / "problems" / "vectoradd")
    code = (REPO_ROOT / "problems" / "vectoradd" / "solutions" / "correct.py").read_text()
    login = gateway.sites.configured["alpha"].login
    assert login is not None
    ssh = SSHTransport("alpha", login)
    found = []
    try:
        for _ in range(runs):
            report_ = await gateway.submit(vectoradd_test_run(task, code))
            assert report_.passed and report_.result_at is not None and report_.handle is not None
            stat = await ssh.run(["stat", "-c", "%.9Y", str(report_.handle.bundle.result)])
            found.append((report_.result_at - float(stat.stdout)) * 1000)
            await ssh.run(["rm", "-rf", "--", str(report_.handle.bundle.root)])  # what keep_bundles kept
    finally:
        await ssh.close()
    return found


def keeping_results(gateway: Gateway, **login: int) -> None:
    """alpha keeps result.json after each run (``keep_bundles: logs``), so that its time of writing can be
    read: a run's bundle is otherwise removed as soon as its result is in."""
    alpha = gateway.sites.configured["alpha"]
    assert alpha.login is not None
    gateway.sites.configured["alpha"] = alpha.model_copy(
        update={"keep_bundles": "logs", "login": alpha.login.model_copy(update=login)}
    )


async def main(console: Console) -> list[Row]:
    pushed_gateway = await Gateway.open(Settings(), use_database=False)
    keeping_results(pushed_gateway)
    try:
        pushed = await latencies(pushed_gateway, PUSHED_RUNS)
    finally:
        await pushed_gateway.close()
    polled_gateway = await Gateway.open(Settings(), use_database=False)
    keeping_results(polled_gateway, tail_channels=0)
    try:
        polled = await latencies(polled_gateway, POLLED_RUNS)
    finally:
        await polled_gateway.close()
    rows = [
        Row(
            "pushed (tail of the output), p95",
            "safety net alone (squeue rounds), p95",
            p95(polled),
            p95(pushed),
        ),
        Row(
            "pushed, median", "safety net alone, median", statistics.median(polled), statistics.median(pushed)
        ),
    ]
    report(
        "result_latency: result.json written -> verified in the gateway (target p95 <= 250 ms)", rows, console
    )
    return rows
