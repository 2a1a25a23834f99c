"""harness.protocol: the key/value parser, result authentication, result parsing and scoring."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import pytest

from harness.phase_result import BenchmarkOutcome, PhaseResult, TestOutcome
from harness.protocol import (
    EXIT_BAD_TEST_SPEC,
    EXIT_TIMEOUT,
    EXIT_VALIDATION_FAILED,
    MAX_SHOWN_NAME,
    PROGRESS_PREFIX,
    RESULT_VERSION,
    HarnessError,
    ProtocolError,
    ResultAuthError,
    canonical_json,
    format_test_spec,
    load_key_hex,
    parse_kv,
    parse_test_spec,
    shown_file_name,
    shown_paths,
    sign_result,
    verify_result,
)
from harness.run_result import RunResult, compute_score

KEY = load_key_hex("00112233445566778899aabbccddeeff" * 2)

BENCH_KV = {
    "check": "pass",
    "benchmark-count": "2",
    "benchmark.0.spec": "size: 16; seed: 1",
    "benchmark.0.runs": "10",
    "benchmark.0.mean": "2000000000",
    "benchmark.0.std": "1.5",
    "benchmark.0.err": "0.5",
    "benchmark.0.best": "1.0",
    "benchmark.0.worst": "4000000000",
    "benchmark.1.spec": "size: 32; seed: 2",
    "benchmark.1.runs": "5",
    "benchmark.1.mean": "8000000000",
    "benchmark.1.std": "0",
    "benchmark.1.err": "0",
    "benchmark.1.best": "8000000000",
    "benchmark.1.worst": "8000000000",
}
TEST_KV = {
    "check": "pass",
    "test-count": "2",
    "test.0.spec": "size: 3; seed: 1",
    "test.0.status": "pass",
    "test.1.spec": "size: 5; seed: 2",
    "test.1.status": "pass",
}


def make_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "version": RESULT_VERSION,
        "run_id": "r-1",
        "mode": "leaderboard",
        "system": {"hostname": "n1"},
        "phases": [
            {"name": "test", "exit_code": 0, "timed_out": False, "duration_s": 1.0, "kv": dict(TEST_KV)},
            {"name": "leaderboard", "exit_code": 0, "timed_out": False, "duration_s": 2.0, "kv": BENCH_KV},
        ],
        "error": None,
    }
    return payload | changes


def test_constants_match_the_contract() -> None:
    assert (EXIT_VALIDATION_FAILED, EXIT_BAD_TEST_SPEC, EXIT_TIMEOUT) == (112, 113, 114)
    assert RESULT_VERSION == 1 and PROGRESS_PREFIX == "[harness] "
    assert issubclass(ProtocolError, HarnessError) and issubclass(ResultAuthError, HarnessError)


def test_parse_kv_splits_at_the_first_separator_and_skips_blank_lines() -> None:
    assert parse_kv("check: pass\n\n  \ntest.0.error: got: 1, expected: 2\n") == {
        "check": "pass",
        "test.0.error": "got: 1, expected: 2",
    }


def test_parse_kv_rejects_a_duplicate_key_so_a_forged_line_cannot_win() -> None:
    with pytest.raises(ProtocolError, match="twice"):
        parse_kv("check: fail\ntest-count: 1\ncheck: pass\n")


def test_parse_kv_rejects_a_line_without_separator() -> None:
    with pytest.raises(ProtocolError, match="line 2"):
        parse_kv("check: pass\nno separator here\n")


def test_test_spec_round_trip_keeps_order_and_int_types() -> None:
    line = format_test_spec({"size": 127, "seed": 4242, "scale": 0.5, "kind": "fp8"})
    assert line == "size: 127; seed: 4242; scale: 0.5; kind: fp8"
    parsed = parse_test_spec(line)
    assert parsed == {"size": 127, "seed": 4242, "scale": 0.5, "kind": "fp8"}
    assert list(parsed) == ["size", "seed", "scale", "kind"]
    assert type(parsed["size"]) is int and type(parsed["scale"]) is float
    with pytest.raises(ProtocolError):
        parse_test_spec("size 127")


def test_canonical_json_is_sorted_compact_ascii() -> None:
    assert canonical_json({"b": 1, "a": ["é", None]}) == b'{"a":["\\u00e9",null],"b":1}'


def test_sign_and_verify_round_trip() -> None:
    document = sign_result(make_payload(), KEY)
    assert set(document) == {"payload", "tag"} and len(document["tag"]) == 64
    assert verify_result(document, KEY) == make_payload()


def test_a_tampered_payload_is_rejected() -> None:
    document = sign_result(make_payload(), KEY)
    forged = copy.deepcopy(document)
    forged["payload"]["phases"][1]["kv"]["benchmark.0.mean"] = "1"
    with pytest.raises(ResultAuthError):
        verify_result(forged, KEY)


def test_a_wrong_key_is_rejected() -> None:
    document = sign_result(make_payload(), KEY)
    with pytest.raises(ResultAuthError):
        verify_result(document, bytes(32))


@pytest.mark.parametrize("document", [[], {"payload": {}}, {"payload": [], "tag": "00"}, {"tag": "x"}])
def test_a_malformed_document_is_a_protocol_error(document: Any) -> None:
    with pytest.raises(ProtocolError):
        verify_result(document, KEY)


def test_load_key_hex_strips_whitespace_and_rejects_junk() -> None:
    assert load_key_hex("  " + "ab" * 32 + "\n") == bytes([0xAB]) * 32
    with pytest.raises(ProtocolError):
        load_key_hex("not hex at all")
    with pytest.raises(ProtocolError):
        load_key_hex("")


def test_compute_score_last_mean_geom() -> None:
    assert compute_score([1.0, 4.0], "last") == 4.0
    assert compute_score([1.0, 4.0], "mean") == 2.5
    assert math.isclose(compute_score([1.0, 4.0], "geom"), 2.0)
    with pytest.raises(ProtocolError, match="unknown ranking"):
        compute_score([1.0], "median")
    with pytest.raises(ProtocolError):
        compute_score([], "mean")


def test_phase_parses_tests_and_benchmarks() -> None:
    tests = PhaseResult("test", 0, False, 1.0, TEST_KV).tests()
    assert tests == [
        TestOutcome(0, "size: 3; seed: 1", True, None),
        TestOutcome(1, "size: 5; seed: 2", True, None),
    ]
    benches = PhaseResult("leaderboard", 0, False, 2.0, BENCH_KV).benchmarks()
    assert benches[0] == BenchmarkOutcome(0, "size: 16; seed: 1", True, None, 10, 2e9, 1.5, 0.5, 1.0, 4e9)
    assert benches[1].mean_ns == 8e9 and benches[1].runs == 5


def test_a_failed_benchmark_carries_its_error() -> None:
    kv = {"check": "fail", "benchmark-count": "1", "benchmark.0.spec": "size: 4"}
    kv |= {"benchmark.0.status": "fail", "benchmark.0.error": "mismatch found!"}
    phase = PhaseResult("benchmark", EXIT_VALIDATION_FAILED, False, 1.0, kv)
    assert phase.benchmarks() == [BenchmarkOutcome(0, "size: 4", False, "mismatch found!")]
    assert not phase.passed
    assert phase.failure_message() == "benchmark benchmark (size: 4) failed: mismatch found!"


def test_a_forged_count_is_a_protocol_error_not_a_long_loop() -> None:
    phase = PhaseResult("test", 0, False, 1.0, {"test-count": "1000000000"})
    with pytest.raises(ProtocolError, match="test-count"):
        phase.tests()
    assert "unreadable results" in (phase.failure_message() or "")


def test_phase_passed_needs_exit_zero_no_timeout_and_check_pass() -> None:
    assert PhaseResult("test", 0, False, 1.0, {"check": "pass"}).passed
    assert not PhaseResult("test", 0, False, 1.0, {"check": "fail"}).passed
    assert not PhaseResult("test", 1, False, 1.0, {"check": "pass"}).passed
    assert not PhaseResult("test", None, True, 1.0, {"check": "pass"}).passed
    assert not PhaseResult("test", 0, False, 1.0, {}).passed


@pytest.mark.parametrize(
    ("phase", "message"),
    [
        (PhaseResult("test", None, True, 2.04, {}), "test: timed out after 2 s"),
        (
            PhaseResult("test", 112, False, 1.0, TEST_KV | {"test.1.status": "fail", "test.1.error": "bad"}),
            "test (size: 5; seed: 2) failed: bad",
        ),
        (PhaseResult("test", 113, False, 1.0, {}, "", "x\nno file\n"), "test: the test specification"),
        (PhaseResult("test", 114, False, 1.0, {}), "test: the evaluator timed out"),
        (PhaseResult("test", -9, False, 1.0, {}), "test: the evaluator was killed by signal 9"),
        (PhaseResult("test", 1, False, 1.0, {}, "", "Traceback\nImportError: x\n"), "ImportError: x"),
        (PhaseResult("test", 0, False, 1.0, {}), "test: the evaluator reported no verdict"),
    ],
)
def test_failure_message_explains_the_failure(phase: PhaseResult, message: str) -> None:
    assert message in (phase.failure_message() or "")


def test_run_result_round_trip_and_score() -> None:
    run = RunResult.from_payload(make_payload())
    assert run.passed and run.failure_message is None
    assert run.to_payload() == make_payload() | {
        "phases": [p | {"stdout_tail": "", "stderr_tail": ""} for p in make_payload()["phases"]],
        "warnings": [],
    }
    assert [t.passed for t in run.tests] == [True, True]
    assert [b.mean_ns for b in run.benchmarks] == [2e9, 8e9]
    assert run.score("last") == 8.0 and run.score("mean") == 5.0
    assert math.isclose(run.score("geom") or 0, 4.0)


def test_score_is_none_unless_passed_with_benchmarks() -> None:
    failed = make_payload()
    failed["phases"][0]["kv"] = TEST_KV | {"check": "fail"}
    assert RunResult.from_payload(failed).score("geom") is None
    assert RunResult.from_payload(make_payload(error="boom")).score("geom") is None
    only_tests = RunResult.from_payload(make_payload(phases=make_payload()["phases"][:1]))
    assert only_tests.passed and only_tests.score("geom") is None
    assert RunResult.from_payload(make_payload(error="boom")).failure_message == "boom"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"version": 99}, "version"),
        ({"phases": {}}, "phases"),
        ({"run_id": 5}, "run_id"),
        ({"phases": [{"name": "test"}]}, "duration_s"),
        (
            {"phases": [{"name": "t", "exit_code": "0", "timed_out": False, "duration_s": 1, "kv": {}}]},
            "exit",
        ),
        (
            {"phases": [{"name": "t", "exit_code": 0, "timed_out": False, "duration_s": 1, "kv": {"a": 1}}]},
            "kv",
        ),
    ],
)
def test_a_malformed_payload_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError, match=f"malformed result payload.*{field}"):
        RunResult.from_payload(make_payload(**changes))


def test_benchmark_lines_must_be_consistent_and_best_worst_may_be_missing() -> None:
    kv = dict(BENCH_KV)
    del kv["benchmark.1.best"], kv["benchmark.1.worst"]  # as reference-kernels' leaderboard mode writes
    assert PhaseResult("benchmark", 0, False, 1.0, kv).benchmarks()[1].best_ns == 8e9
    forged = BENCH_KV | {"benchmark.0.best": "3000000000"}  # best above the mean
    with pytest.raises(ProtocolError, match="inconsistent"):
        PhaseResult("benchmark", 0, False, 1.0, forged).benchmarks()


def test_a_file_name_is_shown_as_is_when_plain_and_escaped_otherwise() -> None:
    assert shown_file_name("my_kernel.py") == "my_kernel.py"
    assert shown_file_name("ядро-v2 (1).py") == "'ядро-v2 (1).py'"  # a space: quoted
    assert shown_file_name("ядро_v2.py") == "ядро_v2.py"
    assert shown_file_name("a\"b'.py") == "'a\"b\\'.py'"
    assert shown_file_name("\u202ekernel.py") == "'\\u202ekernel.py'"  # a bidi override, escaped
    assert shown_file_name("x\nimport os.py") == "'x\\nimport os.py'"
    long = shown_file_name("k" * 250 + ".py")
    assert len(long) == MAX_SHOWN_NAME and long.endswith("k…" + "k" * 17 + ".py")
    assert shown_file_name(None) == shown_file_name("") == shown_file_name(7) == "submission.py"


def test_shown_paths_replace_the_bundle_paths_in_order() -> None:
    replacements = [("/w/r-1/task/submission.py", "mine.py"), ("/w/r-1/task/", ""), ("/w/r-1/", "")]
    text = 'File "/w/r-1/task/submission.py", line 7\nFile "/w/r-1/task/eval.py"\n/w/r-1/harness/x.py'
    assert shown_paths(text, replacements) == 'File "mine.py", line 7\nFile "eval.py"\nharness/x.py'


def test_a_crashed_evaluator_is_told_by_its_exception_and_last_frame() -> None:
    tail = (
        "Traceback (most recent call last):\n"
        '  File "eval.py", line 36, in main\n    ok = custom_kernel(data)\n'
        '  File "\'it\\\'s "x".py\'", line 6, in custom_kernel\n    raise ValueError("no")\n'
        "ValueError: no\n"
    )
    phase = PhaseResult("test", 1, False, 1.0, {"test-count": "1", "test.0.spec": "n: 1"}, "", tail)
    assert phase.failure_message() == (
        "test (n: 1) failed: ValueError: no ('it\\'s \"x\".py', line 6, in custom_kernel)"
    )
    crashed = PhaseResult("test", 1, False, 1.0, {}, "", "Segmentation fault\n")
    assert crashed.failure_message() == "test: the evaluator exited with code 1: Segmentation fault"


def test_list_arguments_round_trip_as_reference_kernels_reads_them() -> None:
    case = {"m": [96, 128], "n": [128, 256], "g": 2, "seed": 1111, "scales": [0.5, 1.5], "names": []}
    line = format_test_spec(case)
    assert line == "m: [96, 128]; n: [128, 256]; g: 2; seed: 1111; scales: [0.5, 1.5]; names: []"
    assert parse_test_spec(line) == case
    assert re.fullmatch(r"\s*([a-zA-Z_]+)\s*:\s*(\[[^\]]*\]|[a-zA-Z_]+|[+-]?[0-9]+)\s*", line.split(";")[0])


@pytest.mark.parametrize(
    "case",
    [{"m": [[1], [2]]}, {"m": ["a,b"]}, {"kind": "a;b"}, {"kind": "two\nlines"}, {"a:b": 1}, {"kind": "[x]"}],
    ids=["nested", "comma", "semicolon", "newline", "colon-key", "bracketed-word"],
)
def test_a_case_that_would_not_read_back_is_refused(case: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        format_test_spec(case)
