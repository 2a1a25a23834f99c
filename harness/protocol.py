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
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

RESULT_VERSION = 1
EXIT_VALIDATION_FAILED = 112
EXIT_BAD_TEST_SPEC = 113
EXIT_TIMEOUT = 114
PROGRESS_PREFIX = "[harness] "
PROFILE_REPORT_LIMIT = 16 * 1024  # characters of one benchmark's profiler table that travel
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


# -- the submission's file name as its author knows it ---------------------------------------------------

SUBMISSION_FILE = "submission.py"  # what the bundle stores the code as (the module the task imports)
FILE_NAME_ENV = "HARNESS_FILE_NAME"  # how the runner tells the built-in evaluator the user's name for it
MAX_SHOWN_NAME = 80
_PLAIN_NAME = re.compile(r"[\w.+=,~@()\[\]…-]+")  # \w: letters and digits of any script, and _; … of a cut


def shown_file_name(name: object) -> str:
    """The user's own name of the submitted file (spec.json ``file_name``), for messages only: it is never
    a path the harness opens. Untrusted: a name of plain characters shows as it is, any other quoted and
    escaped (repr), a long one cut in the middle; none (an older gateway's spec) is the bundle's name."""
    if not isinstance(name, str) or not name.strip():
        return SUBMISSION_FILE
    if len(name) > MAX_SHOWN_NAME:
        name = f"{name[: MAX_SHOWN_NAME - 21]}…{name[-20:]}"
    return name if _PLAIN_NAME.fullmatch(name) else repr(name)


def shown_paths(text: str, replacements: Sequence[tuple[str, str]]) -> str:
    """``text`` with each path in ``replacements`` (longest first, as given) replaced by what users see:
    the submission's own file name for its bundle path, nothing for the folders of the site's workdir."""
    for path, shown in replacements:
        if path:
            text = text.replace(path, shown)
    return text


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
    """``{"size": 127, "seed": 1}`` -> ``size: 127; seed: 1`` (insertion order)."""
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


def encode_report(report: str) -> str:
    """A profiler table (many lines) as one ``key: value`` value: a JSON string, cut to
    PROFILE_REPORT_LIMIT characters with a note saying so."""
    if len(report) > PROFILE_REPORT_LIMIT:
        report = report[:PROFILE_REPORT_LIMIT] + f"\n[cut at {PROFILE_REPORT_LIMIT} characters]"
    return json.dumps(report)


def decode_report(value: str) -> str:
    """``encode_report``'s inverse; a value written before reports were encoded (one line) as it is."""
    if value.startswith('"'):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, str):
            return decoded[: PROFILE_REPORT_LIMIT + 64]
    return value


# -- authentication ----------------------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """The exact bytes the HMAC tag covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def load_key_hex(text: str) -> bytes:
    """The key file's content (hex, whitespace around it ignored) as bytes."""
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
    """result.json's document: the payload and its HMAC-SHA256 tag."""
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
