"""(c) Time from the harness writing its final result to the gateway holding it (verified): the result
pushed over the job's output, followed by the site's login agent (one channel for every run), against,
in the same run, the safety net alone (a site that gives no channel to streams: one squeue per round,
then fetch). Runs one at a time, then CONCURRENT_RUNS submitted at once on alpha (sshd allows 10 channels
per connection: every one of them must still come pushed). Measured against result.json's mtime on the
site's file system (the same clock here). Targets: p95 <= 250 ms one at a time; p95 <= 100 ms and every
result pushed with CONCURRENT_RUNS in flight."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from rich.console import Console

from bench.common import Row, report, vectoradd_test_run
from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.tasks import load_task
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import Gateway

PUSHED_RUNS = 20
POLLED_RUNS = 8
CONCURRENT_RUNS = int(os.environ.get("BENCH_CONCURRENT_RUNS", "100"))


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


async def concurrent_latencies(gateway: Gateway, runs: int) -> tuple[list[float], int]:
    """``runs`` runs submitted at once (queued in Slurm behind alpha's two GPUs, all followed together):
    each one's result written -> verified, and how many came pushed (not by the safety net)."""
    task = load_task(REPO_ROOT / "problems" / "vectoradd")
    code = (REPO_ROOT / "problems" / "vectoradd" / "solutions" / "correct.py").read_text()
    reports = await asyncio.gather(*(gateway.submit(vectoradd_test_run(task, code)) for _ in range(runs)))
    login = gateway.sites.configured["alpha"].login
    assert login is not None
    ssh = SSHTransport("alpha", login)
    try:
        paths = []
        for report_ in reports:
            assert report_.passed and report_.result_at is not None and report_.handle is not None
            paths.append(str(report_.handle.bundle.result))
        stat = await ssh.run(["stat", "-c", "%.9Y", "--", *paths])
        written = [float(line) for line in stat.stdout.split()]
        roots = [str(r.handle.bundle.root) for r in reports if r.handle is not None]
        await ssh.run(["rm", "-rf", "--", *roots])  # what keep_bundles kept
    finally:
        await ssh.close()
    found = [(r.result_at - when) * 1000 for r, when in zip(reports, written, strict=True) if r.result_at]
    return found, sum(r.pushed for r in reports)


def keeping_results(gateway: Gateway, max_jobs: int | None = None, **login: int) -> None:
    """alpha keeps result.json after each run (``keep_bundles: logs``), so that its time of writing can be
    read: a run's bundle is otherwise removed as soon as its result is in. ``max_jobs``: our jobs at once
    in each of its partitions."""
    alpha = gateway.sites.configured["alpha"]
    assert alpha.login is not None
    partitions = [p.model_copy(update={"max_jobs": max_jobs or p.max_jobs}) for p in alpha.partitions]
    gateway.sites.configured["alpha"] = alpha.model_copy(
        update={
            "keep_bundles": "logs",
            "login": alpha.login.model_copy(update=login),
            "partitions": partitions,
        }
    )


async def main(console: Console) -> list[Row]:
    pushed_gateway = await Gateway.open(Settings(), use_database=False)
    keeping_results(pushed_gateway)
    try:
        pushed = await latencies(pushed_gateway, PUSHED_RUNS)
    finally:
        await pushed_gateway.close()
    many_gateway = await Gateway.open(Settings(), use_database=False)
    keeping_results(many_gateway, max_jobs=CONCURRENT_RUNS)
    try:
        start = time.perf_counter()
        many, pushed_count = await concurrent_latencies(many_gateway, CONCURRENT_RUNS)
        took = time.perf_counter() - start
    finally:
        await many_gateway.close()
    console.print(f"{CONCURRENT_RUNS} concurrent runs on alpha took {took:.1f} s; {pushed_count} came pushed")
    polled_gateway = await Gateway.open(Settings(), use_database=False)
    keeping_results(polled_gateway, tail_channels=0)
    try:
        polled = await latencies(polled_gateway, POLLED_RUNS)
    finally:
        await polled_gateway.close()
    rows = [
        Row(
            "pushed (the login agent), p95",
            "safety net alone (squeue rounds), p95",
            p95(polled),
            p95(pushed),
        ),
        Row(
            "pushed, median", "safety net alone, median", statistics.median(polled), statistics.median(pushed)
        ),
        Row(
            f"{CONCURRENT_RUNS} concurrent runs pushed, p95", "safety net alone, p95", p95(polled), p95(many)
        ),
        Row(
            f"{CONCURRENT_RUNS} concurrent runs pushed, max",
            "safety net alone, max",
            max(polled),
            max(many),
        ),
        Row(
            f"{CONCURRENT_RUNS} concurrent runs: results that came pushed",
            "runs",
            CONCURRENT_RUNS,
            pushed_count,
            unit="runs",
        ),
    ]
    report(
        "result_latency: result.json written -> verified in the gateway (targets p95 <= 250 ms one at a "
        f"time, <= 100 ms and all pushed with {CONCURRENT_RUNS} at once)",
        rows,
        console,
    )
    return rows
