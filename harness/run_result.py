"""A run's result: the payload of the signed result.json (harness/protocol.py signs and verifies it), its
phases (harness/phase_result.py), validation of a verified payload, and the score. Standard library only;
shared by the harness, which writes it, and the gateway, which reads it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.phase_result import BenchmarkOutcome, PhaseResult, ProfileOutcome, TestOutcome
from harness.protocol import RESULT_VERSION, ProtocolError


@dataclass(frozen=True)
class RunResult:
    version: int
    run_id: str
    mode: str
    system: dict[str, Any]
    phases: list[PhaseResult]
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # static pre-check flags, for reviewers
    # profile mode under Nsight Compute: {"file", "size", "sha256"} of the report in the bundle, or {"error"}
    ncu: dict[str, Any] | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> RunResult:
        """Validate a verified payload; ProtocolError names the first field that is wrong."""
        try:
            return cls._from_payload(payload)
        except ProtocolError as exc:
            raise ProtocolError(f"malformed result payload: {exc}") from None

    @classmethod
    def _from_payload(cls, payload: Mapping[str, Any]) -> RunResult:
        if not isinstance(payload, Mapping):
            raise ProtocolError("not an object")
        version = _field(payload, "version", int, "result")
        if version != RESULT_VERSION:
            raise ProtocolError(f"version {version} is not {RESULT_VERSION}")
        raw_phases = _field(payload, "phases", list, "result")
        error = payload.get("error")
        system = payload.get("system") or {}
        if not isinstance(error, str | None) or not isinstance(system, dict):
            raise ProtocolError("result: 'error' must be a string or null and 'system' an object")
        return cls(
            version,
            _field(payload, "run_id", str, "result"),
            _field(payload, "mode", str, "result"),
            system,
            [_phase(p, i) for i, p in enumerate(raw_phases)],
            error,
            [str(w) for w in payload.get("warnings") or []],
            _ncu(payload.get("ncu")),
        )

    def to_payload(self) -> dict[str, Any]:
        payload = asdict(self)
        if payload["ncu"] is None:  # only profile runs on a site with Nsight Compute have one
            del payload["ncu"]
        return payload

    def phase(self, *names: str) -> PhaseResult | None:
        return next((p for p in self.phases if p.name in names), None)

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.phases) and all(p.passed for p in self.phases)

    @property
    def tests(self) -> list[TestOutcome]:
        phase = self.phase("test")
        return phase.tests() if phase else []

    @property
    def benchmarks(self) -> list[BenchmarkOutcome]:
        phase = self.phase("benchmark", "leaderboard")
        return phase.benchmarks() if phase else []

    @property
    def profiles(self) -> list[ProfileOutcome]:
        """Profile mode's tables, one per benchmark (empty in the other modes)."""
        phase = self.phase("profile")
        return phase.profiles() if phase else []

    @property
    def failure_message(self) -> str | None:
        if self.error is not None:
            return self.error
        return next((m for p in self.phases if (m := p.failure_message())), None)

    def score(self, ranking_by: str) -> float | None:
        """Seconds (lower is better), only for a run that passed and has benchmarks."""
        benches = self.benchmarks
        if not self.passed or not benches or not all(b.passed for b in benches):
            return None
        return compute_score([b.mean_ns * 1e-9 for b in benches], ranking_by)


def _field(obj: Mapping[str, Any], name: str, kind: type[Any], where: str) -> Any:
    value = obj.get(name)
    # bool is an int to Python, but never a valid count, code or duration here
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _ncu(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ProtocolError("result: 'ncu' must be an object or null")
    if "error" in raw:
        return {"error": str(raw["error"])[:1000]}
    size, digest = raw.get("size"), raw.get("sha256")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or not isinstance(digest, str):
        raise ProtocolError("result: 'ncu' needs a size and a sha256, or an error")
    return {"file": str(raw.get("file", "")), "size": size, "sha256": digest}


def _phase(raw: Any, index: int) -> PhaseResult:
    where = f"phase {index}"
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"{where} is not an object")
    exit_code = raw.get("exit_code")
    if exit_code is not None:
        exit_code = _field(raw, "exit_code", int, where)
    duration = raw.get("duration_s")
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise ProtocolError(f"{where}: field 'duration_s' must be a number")
    kv = _field(raw, "kv", dict, where)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in kv.items()):
        raise ProtocolError(f"{where}: 'kv' must map strings to strings")
    return PhaseResult(
        name=_field(raw, "name", str, where),
        exit_code=exit_code,
        timed_out=_field(raw, "timed_out", bool, where),
        duration_s=float(duration),
        kv=dict(kv),
        stdout_tail=str(raw.get("stdout_tail", "")),
        stderr_tail=str(raw.get("stderr_tail", "")),
    )


def compute_score(means_s: Sequence[float], ranking_by: str) -> float:
    """Seconds from the benchmark means: last, mean or geom (lower is better)."""
    if not means_s:
        raise ProtocolError("no benchmark means to score")
    if ranking_by == "last":
        return means_s[-1]
    if ranking_by == "mean":
        return sum(means_s) / len(means_s)
    if ranking_by == "geom":
        if any(m <= 0 for m in means_s):
            raise ProtocolError("a benchmark mean of zero cannot enter a geometric mean")
        return math.exp(sum(math.log(m) for m in means_s) / len(means_s))
    raise ProtocolError(f"unknown ranking_by {ranking_by!r}: expected last, mean or geom")
