"""One phase's result as the runner reports it (harness/process.py reads its key/value lines): its tests,
benchmarks and profiler tables parsed from those lines, whether it passed, and the message a competitor sees
when it did not. Standard library only; shared by the harness and the gateway (through RunResult)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.protocol import EXIT_MEANINGS, ProtocolError, decode_report


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class, despite the name

    index: int
    spec: str
    passed: bool
    error: str | None


@dataclass(frozen=True)
class BenchmarkOutcome:
    index: int
    spec: str
    passed: bool
    error: str | None
    runs: int = 0
    mean_ns: float = 0.0
    std_ns: float = 0.0
    err_ns: float = 0.0
    best_ns: float = 0.0
    worst_ns: float = 0.0
    median_ns: float | None = None


def _count(kv: Mapping[str, str], key: str) -> int:
    try:
        count = int(kv.get(key, "0"))
    except ValueError as exc:
        raise ProtocolError(f"{key} is not a number: {kv[key]!r}") from exc
    # each entry needs at least one line of its own, so a larger count is forged (and would loop forever)
    if not 0 <= count <= len(kv):
        raise ProtocolError(f"{key} {count} does not match the {len(kv)} lines reported")
    return count


def _float(kv: Mapping[str, str], key: str) -> float:
    try:
        value = float(kv[key])
    except (KeyError, ValueError) as exc:
        raise ProtocolError(f"{key} is missing or not a number") from exc
    if not math.isfinite(value) or value < 0:
        raise ProtocolError(f"{key} is not a finite non-negative number")
    return value


@dataclass(frozen=True)
class ProfileOutcome:
    """One benchmark's profiler table in profile mode. It is made in the submission's process, so it is
    the submission's own text (it could print anything into it): shown escaped, never trusted."""

    index: int
    spec: str
    report: str


@dataclass(frozen=True)
class PhaseResult:
    name: str
    exit_code: int | None
    timed_out: bool
    duration_s: float
    kv: dict[str, str] = field(default_factory=dict)
    stdout_tail: str = ""
    stderr_tail: str = ""

    def tests(self) -> list[TestOutcome]:
        return [
            TestOutcome(
                i,
                self.kv.get(f"test.{i}.spec", ""),
                self.kv.get(f"test.{i}.status") == "pass",
                self.kv.get(f"test.{i}.error"),
            )
            for i in range(_count(self.kv, "test-count"))
        ]

    def benchmarks(self) -> list[BenchmarkOutcome]:
        outcomes = []
        for i in range(_count(self.kv, "benchmark-count")):
            spec = self.kv.get(f"benchmark.{i}.spec", "")
            if self.kv.get(f"benchmark.{i}.status") == "fail" or f"benchmark.{i}.mean" not in self.kv:
                error = self.kv.get(f"benchmark.{i}.error", "no timing reported")
                outcomes.append(BenchmarkOutcome(i, spec, False, error))
                continue
            p = f"benchmark.{i}."
            runs, mean = int(_float(self.kv, p + "runs")), _float(self.kv, p + "mean")
            # reference-kernels' eval.py leaves best/worst out in some modes
            best = _float(self.kv, p + "best") if p + "best" in self.kv else mean
            worst = _float(self.kv, p + "worst") if p + "worst" in self.kv else mean
            median = _float(self.kv, p + "median") if p + "median" in self.kv else None
            if runs < 1 or not best <= mean * (1 + 1e-9) or not mean <= worst * (1 + 1e-9):
                raise ProtocolError(f"benchmark {i}: runs/best/mean/worst are inconsistent")
            outcomes.append(
                BenchmarkOutcome(
                    i,
                    spec,
                    True,
                    None,
                    runs,
                    mean,
                    _float(self.kv, p + "std"),
                    _float(self.kv, p + "err"),
                    best,
                    worst,
                    median,
                )
            )
        return outcomes

    def profiles(self) -> list[ProfileOutcome]:
        """The profiler tables of a profile phase, one per benchmark that reported one."""
        return [
            ProfileOutcome(i, self.kv.get(f"benchmark.{i}.spec", ""), decode_report(report))
            for i in range(_count(self.kv, "benchmark-count"))
            if (report := self.kv.get(f"benchmark.{i}.report")) is not None
        ]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.kv.get("check") == "pass"

    def failure_message(self) -> str | None:
        if self.passed:
            return None
        if self.timed_out:
            return f"{self.name}: timed out after {self.duration_s:.0f} s"
        try:
            failed = [t for t in self.tests() if not t.passed]
            bad = [b for b in self.benchmarks() if not b.passed]
        except ProtocolError as exc:  # forged or truncated lines still deserve a message
            return f"{self.name}: unreadable results: {exc}"
        if failed:
            first = failed[0]
            error = first.error or self.crash() or "no message"
            return f"{self.name} ({first.spec or first.index}) failed: {error}"
        if bad:
            error = bad[0].error or self.crash() or "no message"
            return f"{self.name} benchmark ({bad[0].spec or bad[0].index}) failed: {error}"
        if self.exit_code is None:
            meaning = "the evaluator did not finish"
        elif self.exit_code in EXIT_MEANINGS:
            meaning = EXIT_MEANINGS[self.exit_code]
        elif self.exit_code < 0:
            meaning = f"the evaluator was killed by signal {-self.exit_code}"
        elif self.exit_code == 0:
            meaning = "the evaluator reported no verdict"
        else:
            meaning = f"the evaluator exited with code {self.exit_code}"
        detail = self.crash()
        return f"{self.name}: {meaning}" + (f": {detail}" if detail else "")

    def crash(self) -> str | None:
        """The last line of the evaluator's stderr (a task's own evaluator that raised: the exception),
        with the place of the traceback's last frame when there is one ('File "kernel.py", line 7, in
        custom_kernel' as ``kernel.py, line 7, in custom_kernel``)."""
        lines = self.stderr_tail.strip().splitlines()
        if not lines:
            return None
        frames = _TRACEBACK_FRAME.findall(self.stderr_tail)
        where = f" ({frames[-1][0]}, line {frames[-1][1]}, in {frames[-1][2]})" if frames else ""
        return lines[-1].strip()[:500] + where


_TRACEBACK_FRAME = re.compile(r'^ *File "(.{1,300}?)", line (\d+), in (\S{1,100})$', re.MULTILINE)
