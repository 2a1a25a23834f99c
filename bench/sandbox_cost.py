"""What the sandbox around submitted code costs a run (issue 17; target: at most 50 ms a run).

start: a process started in the sandbox (bubblewrap: user, mount, pid, net, ipc and uts namespaces, the
interpreter bound read-only) until it prints, vs the same process unconfined (its private scratch folder
and clean environment only), alternated in the same run. run: the harness from its start to its first
timed call (the worker, torch loaded, in its sandbox), --isolation bubblewrap vs none, alternated.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench.common import Row, report
from bench.harness_bench import harness_run
from harness.sandbox import Isolation, wrap

STARTS = 30
RUNS = 10


def start_ms(isolation: Isolation, task: Path, scratch: Path) -> float:
    argv = [sys.executable, "-B", "-s", "-E", "-c", "print('ready')"]
    argv, env = wrap(isolation, argv, readable=[str(task)], cwd=str(task), env={}, scratch=str(scratch))
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    elapsed = (time.perf_counter() - began) * 1000
    assert done.stdout.strip() == "ready"
    return elapsed


def measure() -> tuple[list[float], list[float], list[float], list[float]]:
    confined, unconfined = Isolation("bubblewrap"), Isolation("none")
    with tempfile.TemporaryDirectory() as tmp:
        task, scratch = Path(tmp, "task"), Path(tmp, "scratch")
        task.mkdir()
        scratch.mkdir()
        start_ms(confined, task, scratch)  # warm the page cache for both
        pairs = [
            (start_ms(unconfined, task, scratch), start_ms(confined, task, scratch)) for _ in range(STARTS)
        ]
    runs = [(harness_run("none")[0] * 1000, harness_run("bubblewrap")[0] * 1000) for _ in range(RUNS)]
    return [p[0] for p in pairs], [p[1] for p in pairs], [r[0] for r in runs], [r[1] for r in runs]


async def main(console: Console) -> None:
    bare, boxed, run_bare, run_boxed = await asyncio.to_thread(measure)
    rows = [
        Row("sandbox: python started confined (bubblewrap)", "the same, unconfined",
            statistics.median(bare), statistics.median(boxed)),
        Row("harness: start to first timed call, confined", "the same with --isolation none",
            statistics.median(run_bare), statistics.median(run_boxed)),
    ]  # fmt: skip
    report("sandbox: its cost per run (target: at most 50 ms)", rows, console)
    start_cost = statistics.median(b - a for a, b in zip(bare, boxed, strict=True))
    run_cost = statistics.median(b - a for a, b in zip(run_bare, run_boxed, strict=True))
    console.print(
        f"cost of the sandbox: {start_cost:.1f} ms a process start (median of {STARTS} pairs), "
        f"{run_cost:.0f} ms a harness run (median of {RUNS} pairs; torch's import dominates its noise)",
        highlight=False,
    )


if __name__ == "__main__":
    asyncio.run(main(Console(width=150)))
