"""A warm pool's runner on this machine (issue 21), without the dev stack, every run in the bubblewrap
sandbox as the default sites run it.

stream: short test-mode runs (vectoradd) handed to one pool runner (``python -I harness pool``) all at once,
runs per minute from the first inbox entry to the last done record, vs cold ``python -I harness run``
invocations one after another (fewer of them: reported per run). latency: one run at a time into a warm
pool (its next run's processes started and idle, as between a competition's submissions), inbox entry to
result.json, p50 and p95, vs the same run cold. ``python -m bench.pool_bench [--runs N]``: the stream's
length (30 by default; the issue asks for 200).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench.common import Row, report

REPO = Path(__file__).resolve().parent.parent
VECTORADD = REPO / "problems" / "vectoradd"
TESTS = [{"size": 127, "seed": 4242}, {"size": 1024, "seed": 5236}]
STREAM = 30  # make bench; --runs 200 for the stream
COLD = 5
LATENCY = 10
POLL_S = 0.002


def bundle(workdir: Path, run_id: str) -> Path:
    """A test-mode vectoradd bundle as the gateway unpacks it: harness/, task/, spec.json, key, output.log."""
    root = workdir / run_id
    shutil.copytree(REPO / "harness", root / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "task").mkdir()
    for name in ("task.py", "reference.py"):
        shutil.copy(VECTORADD / name, root / "task" / name)
    shutil.copy(VECTORADD.parent / "utils.py", root / "task" / "utils.py")
    shutil.copy(VECTORADD / "solutions" / "correct.py", root / "task" / "submission.py")
    spec = {"run_id": run_id, "mode": "test", "main": None, "tests": TESTS, "benchmarks": [], "seed": None,
            "timeouts": {"test": 60}, "max_time_s": None}  # fmt: skip
    (root / "spec.json").write_text(json.dumps(spec))
    (root / "key").write_text(secrets.token_hex(32))
    (root / "output.log").write_text("")
    return root


def tree_cpu_ticks(root: int) -> int:
    """CPU time (clock ticks) of ``root`` and every process below it, from /proc."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(name)], ticks[int(name)] = int(fields[1]), int(fields[11]) + int(fields[12])
    total, found = 0, {root}
    changed = True  # a child's pid is not always above its parent's: walk to a fixpoint
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    for pid in found:
        total += ticks.get(pid, 0)
    return total


def wait_until_warm(pool: LocalPool, quiet_s: float = 0.5, timeout: float = 120) -> None:
    """Until the pool's processes use no CPU for ``quiet_s``: its next run's processes have started and
    imported torch, as they have in a pool between a competition's submissions."""
    deadline = time.monotonic() + timeout
    last = tree_cpu_ticks(pool.proc.pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = tree_cpu_ticks(pool.proc.pid)
        if now - last <= 1:
            return
        last = now
    raise TimeoutError("the pool's next run's processes never became idle")


def wait_for(path: Path, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path}")
        time.sleep(POLL_S)
    return time.perf_counter()


class LocalPool:
    """One pool runner over a work folder of its own, as a pool job runs it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pooldir = workdir / "pool-p-bench"
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPO / "harness", self.pooldir / "harness", ignore=ignore)
        (self.pooldir / "inbox").mkdir()
        config = {"pool_id": "p-bench", "idle_s": 3600, "max_lifetime_s": 7200}
        (self.pooldir / "pool.json").write_text(json.dumps(config))
        self.log = open(self.pooldir / "output.log", "wb")  # closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-B", "-I", str(self.pooldir / "harness" / "__main__.py"), "pool",
             str(self.pooldir), "--isolation", "bubblewrap"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while b"pool ready" not in (self.pooldir / "output.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.pooldir / "output.log").read_text())
            time.sleep(0.01)

    def enter(self, run_id: str) -> float:
        tmp = self.pooldir / "inbox" / f".{run_id}.tmp"
        tmp.write_text("")
        began = time.perf_counter()
        os.rename(tmp, self.pooldir / "inbox" / run_id)
        return began

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


def passed(root: Path) -> None:
    payload = json.loads((root / "result.json").read_text())["payload"]
    if payload["error"] or not all(p["kv"].get("check") == "pass" for p in payload["phases"]):
        raise RuntimeError(f"{root.name} did not pass: {payload['error'] or payload['phases']}")


def cold_run(workdir: Path, run_id: str) -> float:
    """Seconds of one ``python -u -B -I <bundle>/harness/__main__.py run`` as a job script starts it."""
    root = bundle(workdir, run_id)
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-u", "-B", "-I", str(root / "harness" / "__main__.py"), "run", str(root),
         "--isolation", "bubblewrap"],
        check=True, capture_output=True, cwd=root,
    )  # fmt: skip
    elapsed = time.perf_counter() - began
    passed(root)
    return elapsed


def measure(runs: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cold = [cold_run(workdir, f"r-cold-{i}") for i in range(COLD)]
        pool = LocalPool(workdir)
        try:
            latency = []
            for i in range(LATENCY):
                wait_until_warm(pool)
                root = bundle(workdir, f"r-warm-{i}")
                began = pool.enter(root.name)
                latency.append(wait_for(root / "result.json") - began)
                wait_for(pool.pooldir / "done" / root.name)
                passed(root)
            wait_until_warm(pool)
            roots = [bundle(workdir, f"r-stream-{i}") for i in range(runs)]
            began = min(pool.enter(root.name) for root in roots)
            ended = max(wait_for(pool.pooldir / "done" / root.name) for root in roots)
            for root in roots:
                passed(root)
        finally:
            pool.close()
    return {"cold": cold, "latency": latency, "stream": [(ended - began) / runs]}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(console: Console, runs: int = STREAM) -> None:
    figures = await asyncio.to_thread(measure, runs)
    cold_s = statistics.median(figures["cold"])
    per_run_s = figures["stream"][0]
    rows = [
        Row(f"pool: a stream of {runs} test runs, per run", f"cold harness run (x{COLD}), per run",
            cold_s * 1000, per_run_s * 1000),
        Row("pool: inbox entry -> result.json, p50", "cold harness run, p50",
            cold_s * 1000, statistics.median(figures["latency"]) * 1000),
        Row("pool: inbox entry -> result.json, p95", "cold harness run, p50",
            cold_s * 1000, percentile(figures["latency"], 0.95) * 1000),
    ]  # fmt: skip
    report("pool: a warm pool vs a job per run (vectoradd, test mode, bubblewrap)", rows, console)
    latency = [round(s * 1000) for s in figures["latency"]]
    console.print(
        f"runs per minute: pool {60 / per_run_s:.1f}, cold {60 / cold_s:.1f}; latency (ms): {latency}; "
        f"cold runs (ms): {[round(s * 1000) for s in figures['cold']]}",
        highlight=False,
    )


if __name__ == "__main__":
    count = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else STREAM
    asyncio.run(main(Console(width=150), count))
