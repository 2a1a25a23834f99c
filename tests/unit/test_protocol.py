"""The result contract: key/value parsing, authentication, scoring."""

import math

import pytest

from harness.phase_result import PhaseResult
from harness.protocol import (
    ProtocolError,
    ResultAuthError,
    format_test_spec,
    parse_kv,
    parse_test_spec,
    sign_result,
    verify_result,
)
from harness.run_result import RunResult, compute_score

KEY = bytes(range(32))


def test_parse_kv_reads_gpu_mode_lines() -> None:
    assert parse_kv("check: pass\ntest-count: 2\n\ntest.0.error: a: b\n") == {
        "check": "pass",
        "test-count": "2",
        "test.0.error": "a: b",
    }


def test_a_repeated_key_is_refused() -> None:
    with pytest.raises(ProtocolError, match="twice"):
        parse_kv("check: fail\ncheck: pass\n")


def test_a_line_without_separator_is_refused() -> None:
    with pytest.raises(ProtocolError, match="line 2"):
        parse_kv("check: pass\ngarbage\n")


def test_test_spec_round_trip_keeps_order_and_types() -> None:
    line = format_test_spec({"size": 127, "seed": 4242, "scale": 0.5, "kind": "x"})
    assert line == "size: 127; seed: 4242; scale: 0.5; kind: x"
    assert parse_test_spec(line) == {"size": 127, "seed": 4242, "scale": 0.5, "kind": "x"}
    with pytest.raises(ProtocolError):
        parse_test_spec("size 127")


def payload() -> dict[str, object]:
    return {"version": 1, "run_id": "r1", "mode": "test", "system": {}, "phases": [], "error": None}


def test_sign_and_verify_round_trip() -> None:
    assert verify_result(sign_result(payload(), KEY), KEY) == payload()


def test_a_tampered_payload_or_wrong_key_is_rejected() -> None:
    doc = sign_result(payload(), KEY)
    doc["payload"]["run_id"] = "r2"
    with pytest.raises(ResultAuthError):
        verify_result(doc, KEY)
    with pytest.raises(ResultAuthError):
        verify_result(sign_result(payload(), KEY), bytes(32))
    with pytest.raises(ProtocolError):
        verify_result({"payload": payload()}, KEY)


def test_scores() -> None:
    assert compute_score([1.0, 4.0], "last") == 4.0
    assert compute_score([1.0, 4.0], "mean") == 2.5
    assert math.isclose(compute_score([1.0, 4.0], "geom"), 2.0)
    with pytest.raises(ProtocolError):
        compute_score([1.0], "median")


def phase(kv: dict[str, str], name: str = "leaderboard", exit_code: int | None = 0) -> PhaseResult:
    return PhaseResult(name, exit_code, False, 1.0, kv)


BENCH_KV = {
    "check": "pass",
    "benchmark-count": "2",
    "benchmark.0.spec": "size: 1",
    "benchmark.0.runs": "10",
    "benchmark.0.mean": "1000",
    "benchmark.0.std": "1",
    "benchmark.0.err": "0.3",
    "benchmark.0.best": "990",
    "benchmark.0.worst": "1010",
    "benchmark.1.spec": "size: 2",
    "benchmark.1.runs": "10",
    "benchmark.1.mean": "4000",
    "benchmark.1.std": "1",
    "benchmark.1.err": "0.3",
    "benchmark.1.best": "3990",
    "benchmark.1.worst": "4010",
}


def test_run_result_scores_only_a_passing_run() -> None:
    tests = phase(
        {"check": "pass", "test-count": "1", "test.0.spec": "size: 1", "test.0.status": "pass"}, "test"
    )
    run = RunResult(1, "r", "leaderboard", {}, [tests, phase(BENCH_KV)])
    assert run.passed and [t.passed for t in run.tests] == [True]
    assert run.score("geom") == pytest.approx(2e-6)
    assert RunResult.from_payload(run.to_payload()) == run
    failed = RunResult(1, "r", "leaderboard", {}, [tests, phase(BENCH_KV | {"check": "fail"}, exit_code=112)])
    assert not failed.passed and failed.score("geom") is None


def test_failure_message_names_the_failing_case() -> None:
    kv = {
        "check": "fail",
        "test-count": "1",
        "test.0.spec": "size: 3",
        "test.0.status": "fail",
        "test.0.error": "mismatch found!",
    }
    run = RunResult(1, "r", "test", {}, [phase(kv, "test", 112)])
    assert run.failure_message == "test (size: 3) failed: mismatch found!"
    timed_out = RunResult(1, "r", "test", {}, [PhaseResult("test", None, True, 5.0, {})])
    assert timed_out.failure_message == "test: timed out after 5 s"


def test_a_malformed_payload_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="malformed"):
        RunResult.from_payload({"version": 1, "run_id": "r", "mode": "test", "phases": [{"name": "x"}]})
    with pytest.raises(ProtocolError, match="version"):
        RunResult.from_payload(payload() | {"version": 99})
