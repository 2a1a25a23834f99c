"""Shared helpers: timing, a ratio table, and results written to bench/results/."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table

from gateway.config.tasks import TaskDefinition
from gateway.service.model import SubmitRequest

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    name: str
    baseline: str
    baseline_ms: float
    measured_ms: float
    unit: str = "ms"  # what the two values count (ms unless a row says otherwise, e.g. "RPCs")

    @property
    def ratio(self) -> float:
        return self.baseline_ms / self.measured_ms if self.measured_ms else float("inf")


async def median_ms(action: Callable[[], Awaitable[object]], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def vacuum_until_all_visible(conn: asyncpg.Connection, table: str = "runs") -> None:
    """VACUUM ``table`` until its visibility map is set, as autovacuum leaves a live table: every page
    all-visible, so an index-only scan needs no heap (without it the planner may not choose one at all).
    A VACUUM right after a bulk load can leave the map unset (the load's commit is not yet old enough for
    it), so vacuum again until it is set."""
    for _ in range(10):
        row = await conn.fetchrow("SELECT relpages, relallvisible FROM pg_class WHERE relname = $1", table)
        assert row is not None
        pages, visible = row
        if visible >= 0.99 * pages:
            return
        await asyncio.sleep(0.5)
        await conn.execute(f'VACUUM "{table}"')
    raise RuntimeError(f"{table}: only {visible} of {pages} pages all-visible after VACUUM")


def report(title: str, rows: list[Row], console: Console) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("measured", "baseline", "baseline value", "measured value", "baseline/measured"):
        table.add_column(column, justify="left" if column in ("measured", "baseline") else "right")
    for row in rows:
        table.add_row(
            row.name,
            row.baseline,
            f"{row.baseline_ms:.2f} {row.unit}",
            f"{row.measured_ms:.2f} {row.unit}",
            f"{row.ratio:.2f}x",
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    slug = title.split(":")[0].replace(" ", "_")
    (RESULTS / f"{slug}.json").write_text(
        json.dumps([asdict(r) | {"ratio": r.ratio} for r in rows], indent=1) + "\n"
    )


def vectoradd_test_run(task: TaskDefinition, code: str) -> SubmitRequest:
    """What the Slurm benchmarks submit: vectoradd's correct solution, test mode, on alpha's H100s, to a
    leaderboard of its own."""
    return SubmitRequest(
        code=code,
        file_name="correct.py",
        user="bench",
        task=task,
        leaderboard=f"bench-{uuid.uuid4().hex[:6]}",
        site="alpha",
        gpu_type="H100",
        mode="test",
        admin=True,
    )
