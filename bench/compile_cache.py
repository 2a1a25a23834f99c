"""An inline extension is built once per run: what the run's compiler cache saves each later process.

A submission that builds C++ with ``torch.utils.cpp_extension.load_inline`` compiles when it is imported.
The harness gives every process of a run (each phase's evaluator, every rank, the Nsight Compute pass) the
same cache folder (``harness.sandbox.compiler_caches``), so only the first import compiles. Measured on
vectoradd's ``cpp_inline.py`` solution: its first import in a fresh cache (the baseline, what every
process would pay without the cache) against a later import in the same cache. No dev stack needed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench.common import Row, report
from harness.sandbox import compiler_caches

REPO = Path(__file__).resolve().parent.parent
VECTORADD = REPO / "problems" / "vectoradd"


def import_seconds(task: Path, cache: Path) -> float:
    env = dict(os.environ, **compiler_caches(str(cache)))
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import submission"], cwd=task, env=env, check=True, capture_output=True
    )
    return time.perf_counter() - began


def measure() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-compile-") as tmp:
        task, cache = Path(tmp) / "task", Path(tmp) / "cache"
        task.mkdir()
        for name, source in {
            "task.py": "task.py",
            "utils.py": "../utils.py",
            "reference.py": "reference.py",
        }.items():
            (task / name).write_text((VECTORADD / source).read_text())
        (task / "submission.py").write_text((VECTORADD / "solutions" / "cpp_inline.py").read_text())
        cold = import_seconds(task, cache)
        warm = min(import_seconds(task, cache) for _ in range(3))
    return [
        Row("inline C++ import, later process of the run", "first import (compiles)", cold * 1e3, warm * 1e3)
    ]


async def main(console: Console) -> None:
    rows = await asyncio.to_thread(measure)
    report("compile cache: an inline extension built once per run (vectoradd cpp_inline.py)", rows, console)


if __name__ == "__main__":
    asyncio.run(main(Console(width=150)))
