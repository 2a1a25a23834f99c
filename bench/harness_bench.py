"""Harness overhead and timing noise, on this machine, without the dev stack.

overhead: wall time from starting ``python -m harness run`` (benchmark mode) to its first timed call, vs a
bare ``python -c "import torch"``. noise: relative std, over repeated runs, of the harness's mean for one
kernel vs torch.utils.benchmark's mean for the same kernel, measured in the same run.
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
SOFTMAX = REPO / "problems" / "softmax"
CASE = {"rows": 64, "cols": 256, "seed": 21}
REPEATS = 5


def _bundle(root: Path) -> Path:
    bundle = root / "bundle"
    shutil.copytree(REPO / "harness", bundle / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (bundle / "task").mkdir()
    for name, source in {
        "task.py": "task.py",
        "reference.py": "reference.py",
        "utils.py": "../utils.py",
    }.items():
        shutil.copy(SOFTMAX / source, bundle / "task" / name)
    shutil.copy(SOFTMAX / "solutions" / "correct.py", bundle / "task" / "submission.py")
    spec = {"run_id": "bench", "mode": "benchmark", "main": None, "tests": [CASE], "benchmarks": [CASE],
            "seed": None, "timeouts": {"test": 60, "benchmark": 60}, "max_time_s": 1.0}  # fmt: skip
    (bundle / "spec.json").write_text(json.dumps(spec))
    (bundle / "key").write_text(secrets.token_hex(32))
    return bundle


def harness_run(isolation: str = "bubblewrap") -> tuple[float, float]:
    """(seconds from start to the first timed call, the benchmark's mean in ns)."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = _bundle(Path(tmp))
        mark = Path(tmp) / "first"
        began = time.time_ns()
        env = dict(os.environ, HARNESS_MARK_FILE=str(mark))
        subprocess.run([sys.executable, "-m", "harness", "run", str(bundle), "--isolation", isolation],
                       env=env, check=True, capture_output=True, cwd=bundle)  # fmt: skip
        payload = json.loads((bundle / "result.json").read_text())["payload"]
        mean = float(payload["phases"][1]["kv"]["benchmark.0.mean"])
        return (int(mark.read_text()) - began) / 1e9, mean


def bare_import() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - began


# the same kernel on the device the harness uses (a GPU when there is one: the Timer synchronises it)
TORCH_TIMER = """
import sys, torch, torch.utils.benchmark as tb
sys.path.insert(0, sys.argv[1])
gen = torch.Generator().manual_seed(21)
x = (torch.randn(64, 256, generator=gen) * 40.0).to("cuda" if torch.cuda.is_available() else "cpu")
m = tb.Timer("torch.softmax(x, dim=-1)", globals={"x": x, "torch": torch}).blocked_autorange(min_run_time=1.0)
print(m.mean * 1e9)
"""


def torch_timer_ns() -> float:
    done = subprocess.run([sys.executable, "-c", TORCH_TIMER, str(REPO)], check=True, capture_output=True,
                          text=True)  # fmt: skip
    return float(done.stdout.strip())


def rel_std(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values)


async def main(console: Console) -> None:
    def measure() -> tuple[list[float], list[float], list[float], list[float]]:
        bare = [bare_import() for _ in range(REPEATS)]
        runs = [harness_run() for _ in range(REPEATS)]
        torch_means = [torch_timer_ns() for _ in range(REPEATS)]
        return bare, [r[0] for r in runs], [r[1] for r in runs], torch_means

    bare, first_timed, harness_means, torch_means = await asyncio.to_thread(measure)
    rows = [
        Row("harness: start to first timed call", "python -c 'import torch'",
            statistics.median(bare) * 1000, statistics.median(first_timed) * 1000),
        Row("harness: rel. std of the mean x1000", "torch.utils.benchmark (same kernel)",
            rel_std(torch_means) * 1000, rel_std(harness_means) * 1000),
    ]  # fmt: skip
    device = "GPU" if shutil.which("nvidia-smi") else "CPU"
    report(f"harness: overhead and timing noise (softmax 64x256, {device})", rows, console)
    console.print(
        f"means (µs): harness {[round(m / 1e3, 2) for m in harness_means]}, "
        f"torch.utils.benchmark {[round(m / 1e3, 2) for m in torch_means]}",
        highlight=False,
    )
