"""How fast the `gateway` command starts (issue 18; target: at most 2x a bare `python -c pass`).

Each command runs as a user runs it, the `gateway` console script (pyproject's entry point,
gateway.cli.fast:main, run as the script pip writes for it) in a fresh process, against `python -c pass` on
the same interpreter, interleaved in the same run (one of each in turn, REPEATS rounds after a warm-up round),
median wall time. A TAB press is a completion request: the script run with _GATEWAY_COMPLETE set, as the
shell's completion function runs it.

The rows with a target are cache hits: the warm-up round fills the CLI's cache (in a temporary
XDG_CACHE_HOME), so `--help` prints the page typer rendered the first time and a TAB is answered from the
cached manifest of the command tree, without loading typer (gateway.cli.fast). The cold-cache row is the
first `--help` after the cache is gone (a new install, a changed CLI module): typer renders the page and the
cache is rebuilt; it has no target, nor has the floor the CLI framework itself sets (importing typer, which
every command that is not a help request or a completion still pays).

Bytecode is cached as an installed package has it: PYTHONDONTWRITEBYTECODE is dropped for these runs, so
the first (warm-up) round writes the .pyc files a wheel install would have compiled.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench.common import RESULTS

REPEATS = 21
TARGET = 2.0
# What pip's generated script for `gateway = "gateway.cli.fast:main"` does, under the name `gateway`
ENTRY = "import sys; sys.argv[0] = 'gateway'; from gateway.cli.fast import main; sys.exit(main())"
GATEWAY = [sys.executable, "-c", ENTRY]


@dataclass(frozen=True)
class Command:
    name: str
    argv: list[str]
    env: dict[str, str]
    target: float | None = TARGET
    cold: bool = False  # the CLI's cache is removed before each run (outside the timing)


@dataclass(frozen=True)
class Timing:
    wall_ms: float
    cpu_ms: float


def commands(sites_dir: Path, cache_home: Path) -> tuple[Command, list[Command]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["GATEWAY_SITES_DIR"] = str(sites_dir)  # completion of sites reads this folder, not the settings
    env["XDG_CACHE_HOME"] = str(cache_home)  # the CLI's cache, not the user's

    def completing(words: str) -> dict[str, str]:
        cword = len(words.split()) - (0 if words.endswith(" ") else 1)
        return {**env, "_GATEWAY_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}

    bare = Command("python -c pass", [sys.executable, "-c", "pass"], env, None)
    measured = [
        Command("gateway --help (cache hit)", [*GATEWAY, "--help"], env),
        Command("gateway submit --help (cache hit)", [*GATEWAY, "submit", "--help"], env),
        Command("TAB: gateway sub<TAB> (cache hit)", GATEWAY, completing("gateway sub")),
        Command(
            "TAB: gateway submit f.py --site <TAB> (cache hit)",
            GATEWAY,
            completing("gateway submit f.py --site "),
        ),
        Command(
            "gateway --help, cold cache (typer renders it)",
            [*GATEWAY, "--help"],
            {**env, "XDG_CACHE_HOME": str(cache_home / "cold")},  # its own: the hits keep theirs
            None,
            cold=True,
        ),
        Command(
            "floor: python -c 'import typer.main'", [sys.executable, "-c", "import typer.main"], env, None
        ),
    ]
    return bare, measured


def timed(command: Command) -> Timing:
    if command.cold:
        shutil.rmtree(Path(command.env["XDG_CACHE_HOME"]) / "kernel-gateway", ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(
        command.argv, env=command.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    wall = (time.perf_counter() - began) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    return Timing(wall, cpu)


def measure(repeats: int = REPEATS) -> tuple[Command, dict[str, list[Timing]], list[Command]]:
    with tempfile.TemporaryDirectory() as tmp:
        sites = Path(tmp) / "sites"
        sites.mkdir()
        (sites / "alpha.yaml").write_text("name: alpha\npartitions:\n  - name: h100\n    gpu_type: H100\n")
        bare, measured = commands(sites, Path(tmp) / "cache")
        everything = [bare, *measured]
        for command in everything:  # warm-up: page cache, bytecode and the CLI's cache
            timed(command)
        samples: dict[str, list[Timing]] = {c.name: [] for c in everything}
        for _ in range(repeats):
            for command in everything:
                samples[command.name].append(timed(command))
    return bare, samples, measured


def median(timings: list[Timing]) -> Timing:
    return Timing(statistics.median(t.wall_ms for t in timings), statistics.median(t.cpu_ms for t in timings))


async def main(console: Console) -> None:
    bare, samples, measured = await asyncio.to_thread(measure)
    base = median(samples[bare.name])
    title = f"cli_start: gateway start-up vs a bare python (target: at most {TARGET:g}x; median of {REPEATS})"
    table = Table(title=title, title_justify="left")
    for column in (
        "measured",
        "baseline",
        "baseline value",
        "measured value",
        "measured/baseline",
        "cpu ratio",
    ):
        table.add_column(column, justify="left" if column in ("measured", "baseline") else "right")
    table.add_column("verdict")
    rows = []
    for command in measured:
        got = median(samples[command.name])
        ratio, cpu_ratio = got.wall_ms / base.wall_ms, got.cpu_ms / max(base.cpu_ms, 1e-9)
        if command.target is None:
            verdict = Text("no target", style="dim")
        elif ratio <= command.target:
            verdict = Text("PASS", style="bold green")
        else:
            verdict = Text(f"FAIL (> {command.target:g}x)", style="bold red")
        table.add_row(
            command.name,
            bare.name,
            f"{base.wall_ms:.1f} ms",
            f"{got.wall_ms:.1f} ms",
            f"{ratio:.2f}x",
            f"{cpu_ratio:.2f}x",
            verdict,
        )
        rows.append(
            {
                "name": command.name,
                "baseline": bare.name,
                "baseline_ms": base.wall_ms,
                "measured_ms": got.wall_ms,
                "ratio": ratio,
                "cpu_ratio": cpu_ratio,
                "target": command.target,
                "passed": None if command.target is None else ratio <= command.target,
            }
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_start.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main(Console(width=150)))
