"""Statistics and the adaptive stopping rule, computed by the trusted evaluator from raw samples.

Standard library only: the worker sends one number per timed call and never a summary, so patching
``statistics`` or ``math`` in the submission's process changes nothing here.
"""

from __future__ import annotations

import math
import statistics
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
    return Stats(n, mean, std, std / math.sqrt(n), min(samples), max(samples), statistics.median(samples))


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


# -- the evaluator's bound on each timed call ----------------------------------------------------------
# The worker's own figure for a call (perf counter, CUDA events) is precise but lives in the submission's
# process, where user code can rewrite it. The evaluator's clock around the whole request cannot be
# touched. Each timed request is paired with one request of the same case, output path and output size to
# a twin worker that never imports the submission and runs the harness's no-op kernel: its wall time is
# the request's fixed cost (input generation, copies, pipes, L2 flush) under the same load, a moment apart.
# The timed request's wall time less its twin's bounds what the call itself took.
TWIN_WARMUP = 2  # twin requests per case before its pairs are kept: first calls fault pages in
TOL_ABS_NS = 20_000.0  # per call: what a patched worker may shave unnoticed, plus TOL_REL of its mean
TOL_REL = 0.02
# Two processes' requests of the same case differ by several percent of its fixed cost even when honest
# (the allocator's and the caches' states are their own, and a 2-core machine running a Slurm stack moved
# vectoradd's by up to 7.5%): what a worker may shave also grows with that cost.
TOL_FIXED = 0.10
TOL_Z = 4.0  # standard errors of the pairs' noise (from the twin's own spread) the mean may add


@dataclass(frozen=True)
class Verdict:
    """Whose clock ranks a case, and the figures that decided it (ns per call)."""

    clock: str  # "worker" or "evaluator"
    median_excess: float  # median of (bound - worker's figure)
    mean_excess: float  # mean of the same, each clipped to +-cap
    tolerance: float  # for the median; the mean's adds the pairs' noise
    fixed: float  # median fixed cost of one request

    def describe(self) -> str:
        return (
            f"excess median {self.median_excess:.0f} ns, mean {self.mean_excess:.0f} ns; tolerance "
            f"{self.tolerance:.0f} ns; fixed cost {self.fixed:.0f} ns"
        )


def reconcile(reported: list[float], walls: list[float], fixed: list[float]) -> tuple[list[float], Verdict]:
    """The samples that rank: the worker's own where they agree with the evaluator's bounds (the wall
    time of each request less its fixed cost, from the twin request paired with it) within the tolerance;
    otherwise each is at least its bound.

    Agreement is judged twice. The median excess, robust to stalls however loaded the machine, must be
    within TOL_ABS_NS + TOL_REL of the mean + TOL_FIXED of the fixed cost: a worker that shortens most of
    its calls is caught at once.
    The mean excess, each call's clipped to +-cap (the fixed cost plus the typical bound, so that a call
    whose time is hidden entirely counts in full but one stall cannot count more), must be within the
    same plus TOL_Z standard errors of the pairs' noise, taken from the twin's spread (no user code
    runs there to widen it): this catches a worker that hides all of a few calls' time."""
    n = len(reported)
    bounds = [w - f for w, f in zip(walls, fixed, strict=True)]
    excess = [b - r for r, b in zip(reported, bounds, strict=True)]
    typical = statistics.median(fixed)
    cap = typical + max(0.0, statistics.median(bounds))
    clipped = math.fsum(min(cap, max(-cap, e)) for e in excess) / n
    spread = 1.4826 * statistics.median([abs(f - typical) for f in fixed])  # a robust standard deviation
    tol = TOL_ABS_NS + TOL_REL * max(0.0, math.fsum(reported) / n) + TOL_FIXED * max(0.0, typical)
    noise = TOL_Z * math.sqrt(2.0) * spread / math.sqrt(n)
    verdict = Verdict("worker", statistics.median(excess), clipped, tol, typical)
    if verdict.median_excess <= tol and clipped <= tol + noise:
        return reported, verdict
    # a twin request that stalled would lower its pair's bound: no fixed cost above the typical one counts
    bounded = [max(r, w - min(f, typical)) for r, w, f in zip(reported, walls, fixed, strict=True)]
    return bounded, Verdict("evaluator", verdict.median_excess, clipped, tol, typical)
