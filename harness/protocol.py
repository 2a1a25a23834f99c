"""The result contract shared by the harness (on the GPU node) and the gateway: one definition for both.

Standard library only. Exceptions::

    HarnessError
    ├── ProtocolError     malformed key/value text, test spec or result payload
    └── ResultAuthError   a result.json whose tag does not verify with the run's key
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

RESULT_VERSION = 1
EXIT_VALIDATION_FAILED = 112
EXIT_BAD_TEST_SPEC = 113
EXIT_TIMEOUT = 114
PROGRESS_PREFIX = "[harness] "
EXIT_MEANINGS = {
    EXIT_VALIDATION_FAILED: "validation failed",
    EXIT_BAD_TEST_SPEC: "the test specification could not be read",
    EXIT_TIMEOUT: "the evaluator timed out",
}


class HarnessError(Exception):
    """Root of every error the harness raises."""


class ProtocolError(HarnessError):
    """Key/value text, a test spec or a result payload is malformed."""


class ResultAuthError(HarnessError):
    """A result's tag does not verify with the run's key."""


# -- GPU MODE's key/value protocol -------------------------------------------------------------------


def parse_kv(text: str) -> dict[str, str]:
    """``key: value`` lines; a repeated key is refused (a forged second line must not win)."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep or value:
                raise ProtocolError(f"line {number}: expected 'key: value', got {line[:80]!r}")
        key = key.strip()
        if key in values:
            raise ProtocolError(f"line {number}: key {key!r} appears twice")
        values[key] = value.strip()
    return values


def format_test_spec(case: Mapping[str, object]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in case.items())


def _scalar(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_test_spec(line: str) -> dict[str, int | float | str]:
    """``size: 127; seed: 4242`` -> ``{"size": 127, "seed": 4242}``."""
    case: dict[str, int | float | str] = {}
    for part in line.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition(":")
        if not sep or not key.strip():
            raise ProtocolError(f"bad test spec {line!r}: expected 'key: value; key: value'")
        case[key.strip()] = _scalar(value.strip())
    return case


# -- authentication ----------------------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def load_key_hex(text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise ProtocolError("the run key is not hex") from exc
    if len(key) < 16:
        raise ProtocolError("the run key is too short")
    return key


def _tag(payload: Mapping[str, Any], key: bytes) -> str:
    return hmac.new(key, canonical_json(payload), hashlib.sha256).hexdigest()


def sign_result(payload: dict[str, Any], key: bytes) -> dict[str, Any]:
    return {"payload": payload, "tag": _tag(payload, key)}


def verify_result(document: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """The payload of a signed result, or ResultAuthError when the tag does not match."""
    if not isinstance(document, Mapping):
        raise ProtocolError("result.json is not an object")
    payload, tag = document.get("payload"), document.get("tag")
    if not isinstance(payload, dict) or not isinstance(tag, str):
        raise ProtocolError("result.json needs a 'payload' object and a 'tag' string")
    if not hmac.compare_digest(_tag(payload, key), tag):
        raise ResultAuthError("result tag does not verify")
    return payload


# -- results -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestOutcome:
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


def _count(kv: Mapping[str, str], key: str) -> int:
    try:
        return int(kv.get(key, "0"))
    except ValueError as exc:
        raise ProtocolError(f"{key} is not a number: {kv[key]!r}") from exc


def _float(kv: Mapping[str, str], key: str) -> float:
    try:
        value = float(kv[key])
    except (KeyError, ValueError) as exc:
        raise ProtocolError(f"{key} is missing or not a number") from exc
    if not math.isfinite(value) or value < 0:
        raise ProtocolError(f"{key} is not a finite non-negative number")
    return value


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
            outcomes.append(
                BenchmarkOutcome(
                    i,
                    spec,
                    True,
                    None,
                    int(_float(self.kv, p + "runs")),
                    _float(self.kv, p + "mean"),
                    _float(self.kv, p + "std"),
                    _float(self.kv, p + "err"),
                    _float(self.kv, p + "best"),
                    _float(self.kv, p + "worst"),
                )
            )
        return outcomes

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.kv.get("check") == "pass"

    def failure_message(self) -> str | None:
        if self.passed:
            return None
        if self.timed_out:
            return f"{self.name}: timed out after {self.duration_s:.0f} s"
        failed = [t for t in self.tests() if not t.passed]
        if failed:
            first = failed[0]
            return f"{self.name} ({first.spec or first.index}) failed: {first.error or 'no message'}"
        bad = [b for b in self.benchmarks() if not b.passed]
        if bad:
            return f"{self.name} benchmark ({bad[0].spec or bad[0].index}) failed: {bad[0].error}"
        meaning = EXIT_MEANINGS.get(self.exit_code or 0, f"exit code {self.exit_code}")
        detail = self.stderr_tail.strip().splitlines()[-1:] or [""]
        return f"{self.name}: {meaning} {detail[0]}".strip()


@dataclass(frozen=True)
class RunResult:
    version: int
    run_id: str
    mode: str
    system: dict[str, Any]
    phases: list[PhaseResult]
    error: str | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> RunResult:
        try:
            version = int(payload["version"])
            if version != RESULT_VERSION:
                raise ProtocolError(f"result version {version} is not {RESULT_VERSION}")
            phases = [
                PhaseResult(
                    name=str(p["name"]),
                    exit_code=None if p["exit_code"] is None else int(p["exit_code"]),
                    timed_out=bool(p["timed_out"]),
                    duration_s=float(p["duration_s"]),
                    kv={str(k): str(v) for k, v in dict(p["kv"]).items()},
                    stdout_tail=str(p.get("stdout_tail", "")),
                    stderr_tail=str(p.get("stderr_tail", "")),
                )
                for p in payload["phases"]
            ]
            return cls(
                version,
                str(payload["run_id"]),
                str(payload["mode"]),
                dict(payload.get("system") or {}),
                phases,
                None if payload.get("error") is None else str(payload["error"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed result payload: {type(exc).__name__}: {exc}") from exc

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

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


def compute_score(means_s: Sequence[float], ranking_by: str) -> float:
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
