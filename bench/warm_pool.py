"""Warm pools against jobs of their own, in the same run on the dev stack's alpha: test-mode vectoradd runs,
submit to verified result. The cold runs go to alpha as they always do; the warm ones to a pool job in
alpha's debug partition (docs/warm-pools.md), first a few seconds apart (the pool idle, its next run's
processes started, when each arrives), then back to back. Targets (issue 21): warm p50 <= 500 ms and at
least 5x the cold path; warm runs per minute at least 5x."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from bench.common import Row, report, vectoradd_test_run
from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.tasks import load_task
from gateway.service.facade import Gateway

COLD_RUNS = 6
WARM_RUNS = 10  # one at a time, the pool idle (its next run's processes started) when each arrives
SPACING_S = 4.0  # between them: a competition's submissions arrive apart
STREAM_RUNS = 20  # back to back: each run waits for the processes the run before it started
POOL = '    warm_pool: {max_jobs: 1, idle_s: 30, max_lifetime: "00:05:00"}\n'


def alpha_with_a_pool(settings: Settings, folder: Path) -> Path:
    """alpha's site file with a warm pool in its debug partition (a run's limit of 2 minutes, so a pool
    job fits the partition's MaxTime of 5), in ``folder``."""
    text = (settings.sites_dir / "alpha.yaml").read_text()
    text = text.replace("../.dev/ssh/", f"{(settings.sites_dir / '../.dev/ssh').resolve()}/")
    head, tail = text.split("  - name: debug\n")
    tail = tail.replace('time_limit: "00:05:00"', 'time_limit: "00:02:00"', 1)
    (folder / "alpha.yaml").write_text(head + "  - name: debug\n" + POOL + tail)
    return folder


async def stream(gateway: Gateway, runs: int, spacing_s: float = 0.0) -> tuple[list[float], float]:
    """Each run's submit-to-result time (ms) and the whole stream's (s), ``spacing_s`` apart."""
    task = load_task(REPO_ROOT / "problems" / "vectoradd")
    code = (REPO_ROOT / "problems" / "vectoradd" / "solutions" / "correct.py").read_text()
    times = []
    began = time.perf_counter()
    for index in range(runs):
        if spacing_s and index:
            await asyncio.sleep(spacing_s)
        start = time.perf_counter()
        result = await gateway.submit(replace(vectoradd_test_run(task, code), site=None))
        times.append((time.perf_counter() - start) * 1000)
        assert result.passed, result.error
    return times, time.perf_counter() - began


async def warm_stream(settings: Settings, folder: Path) -> tuple[list[float], float]:
    gateway = await Gateway.open(
        settings.model_copy(update={"sites_dir": alpha_with_a_pool(settings, folder)})
    )
    site = gateway.sites.configured["alpha"]
    debug = site.partition("debug")
    assert debug is not None and gateway.store is not None
    try:
        await gateway.pools.sweep()
        live = [p.id for p in await gateway.store.live_pools("alpha") if p.partition == "debug"]
        pool_id = live[0] if live else await gateway.pools.grow(site, debug, 1)  # one an earlier run left
        assert pool_id is not None
        for _ in range(600):  # a pool job starts in seconds on the idle dev cluster
            if any(p.id == pool_id and p.state == "ready" for p in await gateway.store.live_pools("alpha")):
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"pool {pool_id} not ready after 2 minutes")
        await asyncio.sleep(SPACING_S)  # its first run's processes started
        times, _ = await stream(gateway, WARM_RUNS, SPACING_S)
        _, total = await stream(gateway, STREAM_RUNS)
        backend = gateway.pools.backend(site)
        assert backend is not None
        jobs = [p.job_id for p in await gateway.store.live_pools("alpha") if p.id == pool_id and p.job_id]
        await backend.cancel_pools(jobs)
        await gateway.pools.sweep()
        return times, total / STREAM_RUNS
    finally:
        await gateway.close()


async def main(console: Console) -> list[Row]:
    settings = Settings(submissions_per_minute=0)  # one user's stream of runs, faster than 20 a minute
    cold_gateway = await Gateway.open(settings)
    try:
        cold, cold_total = await stream(cold_gateway, COLD_RUNS)
    finally:
        await cold_gateway.close()
    with tempfile.TemporaryDirectory() as folder:
        warm, per_run_warm_s = await warm_stream(settings, Path(folder))
    per_run_cold = cold_total / COLD_RUNS * 1000
    per_run_warm = per_run_warm_s * 1000
    rows = [
        Row(
            "warm pool, runs apart: submit -> verified, p50 (target <= 500 ms, >= 5x)",
            "a job of its own, p50",
            statistics.median(cold),
            statistics.median(warm),
        ),
        Row(
            "warm pool, runs apart: submit -> verified, p95", "a job of its own, p95", _p95(cold), _p95(warm)
        ),
        Row(
            f"warm pool: {STREAM_RUNS} back to back, time per run (target >= 5x)",
            f"jobs of their own, a stream of {COLD_RUNS}",
            per_run_cold,
            per_run_warm,
        ),
    ]
    report("warm_pool: test-mode runs on alpha, warm pool vs a job per run", rows, console)
    return rows


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


if __name__ == "__main__":
    asyncio.run(main(Console(width=150)))
