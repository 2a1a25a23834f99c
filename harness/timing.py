"""Statistics and the adaptive stopping rule, computed by the trusted evaluator from raw samples.

Standard library only: the worker sends one number per timed call and never a summary, so patching
``statistics`` or ``math`` in the submission's process changes nothing here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_RUNS = 10
MIN_TIME_S = 0.05  # at least this much timed-loop time before the error target may stop it
MAX_RUNS = 1000
REL_ERR_TARGET = 0.001  # stop when the standard error of the mean is below 0.1% of it
MAX_TIME_S = {"benchmark": 2.0, "leaderboard": 4.0, "profile": 1.0}  # per shape
WARMUP_S = 0.05
WARMUP_MIN_CALLS = 3
# Below these a reported mean is physically implausible (a launch on a GPU takes microseconds; a torch
# call on a CPU hundreds of nanoseconds) and is rejected, so one shape driven to ~0 cannot collapse a
# geometric mean. A benchmark case may set its own with ``floor_ns``.
DEFAULT_FLOOR_NS = {"cuda": 1000.0, "cpu": 100.0}


@dataclass(frozen=True)
class Stats:
    runs: int
    mean: float
    std: float
    err: float
    best: float
    worst: float
    median: float

    def items(self) -> list[tuple[str, float | int]]:
        return [
            ("runs", self.runs),
            ("mean", self.mean),
            ("std", self.std),
            ("err", self.err),
            ("best", self.best),
            ("worst", self.worst),
            ("median", self.median),
        ]


def summarise(samples: list[float]) -> Stats:
    """n, mean, sample std, standard error, best, worst and median of nanosecond samples."""
    n = len(samples)
    if n == 0:
        raise ValueError("no samples")
    mean = math.fsum(samples) / n
    std = math.sqrt(math.fsum((s - mean) ** 2 for s in samples) / (n - 1)) if n > 1 else 0.0
    ordered = sorted(samples)
    mid = n // 2
    median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return Stats(n, mean, std, std / math.sqrt(n), ordered[0], ordered[-1], median)


def should_stop(samples: list[float], elapsed_s: float, max_time_s: float, max_runs: int = MAX_RUNS) -> bool:
    """Stop at the caps; otherwise only after MIN_RUNS and MIN_TIME_S, once the relative error is small."""
    n = len(samples)
    if n >= max_runs or elapsed_s >= max_time_s:
        return n >= 1
    if n < MIN_RUNS or elapsed_s < MIN_TIME_S:
        return False
    stats = summarise(samples)
    return stats.mean > 0 and stats.err < REL_ERR_TARGET * stats.mean


def below_floor(stats: Stats, floor_ns: float) -> str | None:
    """Why a timing is rejected, or None."""
    if stats.mean < floor_ns:
        return (
            f"mean time {stats.mean:.0f} ns is below this shape's floor of {floor_ns:.0f} ns: "
            "physically implausible, rejected"
        )
    return None
