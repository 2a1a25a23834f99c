"""The built-in evaluator: GPU MODE's interface in a real process, and its timing loop in this one."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import evaluator
from harness.protocol import EXIT_BAD_TEST_SPEC, EXIT_VALIDATION_FAILED, PhaseResult, parse_kv

REPO = Path(__file__).resolve().parents[2]
VECTORADD = REPO / "problems" / "vectoradd"

MIXED = """
from task import input_t, output_t

def custom_kernel(data: input_t) -> output_t:
    a, b = data
    if a.numel() == 127:
        raise RuntimeError("kernel exploded")
    if a.numel() == 1024:
        return a - b
    return a + b
"""


def make_task(tmp_path: Path, code: str) -> Path:
    task = tmp_path / "task"
    task.mkdir()
    for name, source in (
        ("task.py", "task.py"),
        ("reference.py", "reference.py"),
        ("utils.py", "../utils.py"),
    ):
        shutil.copy(VECTORADD / source, task / name)
    (task / "submission.py").write_text(code)
    return task


def run_evaluator(task: Path, mode: str, cases: str, seed: int | None = None) -> tuple[int, dict[str, str]]:
    tests_file = task.parent / "cases.txt"
    tests_file.write_text(cases)
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, POPCORN_FD=str(write_fd), PYTHONPATH=str(REPO))
    if seed is not None:
        env["POPCORN_SEED"] = str(seed)
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.evaluator", mode, str(tests_file)],
        cwd=task,
        env=env,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        text = pipe.read()
    return proc.wait(timeout=60), parse_kv(text)


def test_test_mode_reports_each_case_and_user_exceptions(tmp_path: Path) -> None:
    cases = "size: 127; seed: 1\nsize: 1024; seed: 2\nsize: 4097; seed: 3\n"
    code, kv = run_evaluator(make_task(tmp_path, MIXED), "test", cases)
    assert code == EXIT_VALIDATION_FAILED
    assert kv["check"] == "fail" and kv["test-count"] == "3"
    assert kv["test.0.spec"] == "size: 127; seed: 1"
    assert kv["test.0.status"] == "fail" and kv["test.0.error"] == "RuntimeError: kernel exploded"
    assert kv["test.1.status"] == "fail" and "mismatch found" in kv["test.1.error"]
    assert kv["test.2.status"] == "pass" and "test.2.error" not in kv


def test_benchmark_mode_times_each_case(tmp_path: Path) -> None:
    correct = (VECTORADD / "solutions" / "correct.py").read_text()
    code, kv = run_evaluator(make_task(tmp_path, correct), "benchmark", "size: 4096; seed: 7\n", seed=99)
    assert code == 0 and kv["check"] == "pass"
    [bench] = PhaseResult("benchmark", code, False, 1.0, kv).benchmarks()
    assert bench.passed and bench.spec == "size: 4096; seed: 7"
    assert evaluator.MIN_RUNS <= bench.runs <= evaluator.MAX_RUNS
    assert 0 < bench.best_ns <= bench.mean_ns <= bench.worst_ns and bench.err_ns <= bench.std_ns


def test_a_bad_tests_file_exits_113(tmp_path: Path) -> None:
    code, kv = run_evaluator(make_task(tmp_path, MIXED), "test", "size 127\n")
    assert code == EXIT_BAD_TEST_SPEC and kv == {}


def test_the_secret_seed_is_combined_by_cantor_pairing() -> None:
    assert [evaluator.cantor(a, b) for a, b in [(0, 0), (1, 0), (0, 1), (2, 3)]] == [0, 1, 2, 18]
    plain = evaluator.Evaluator(io.StringIO(), None)
    secret = evaluator.Evaluator(io.StringIO(), 7)
    assert plain.case({"size": 8, "seed": 5}) == {"size": 8, "seed": 5}
    assert plain.case({"size": 8, "seed": 5}, salt=2) == {"size": 8, "seed": 7}
    assert secret.case({"size": 8, "seed": 5}) == {"size": 8, "seed": evaluator.cantor(5, 7)}
    assert secret.case({"size": 8}) == {"size": 8}


class FakeTask:
    """generate_input / check_implementation / a kernel, counting calls."""

    def __init__(self, wrong_after: int | None = None) -> None:
        self.seeds: list[int] = []
        self.checks = 0
        self.calls = 0
        self.wrong_after = wrong_after

    def generate_input(self, size: int, seed: int) -> Any:
        import torch

        self.seeds.append(seed)
        return torch.full((size,), float(seed))

    def check(self, data: Any, output: Any) -> tuple[bool, str]:
        self.checks += 1
        return bool((output == data * 2).all()), "mismatch found! doubled wrongly"

    def kernel(self, data: Any) -> Any:
        self.calls += 1
        if self.wrong_after is not None and self.calls > self.wrong_after:
            return data
        return data * 2


@pytest.mark.parametrize("mode", ["benchmark", "leaderboard"])
def test_timing_loop_regenerates_inputs_and_stops_at_the_cap(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(evaluator.BUDGET_S, mode, 60.0)  # only the run cap or the error target stops it
    ev = evaluator.Evaluator(io.StringIO(), None)
    fake = FakeTask()
    durations = ev._time_case(mode, {"size": 4, "seed": 10}, fake.kernel, fake.generate_input, fake.check)
    assert evaluator.MIN_RUNS <= len(durations) <= evaluator.MAX_RUNS and all(d > 0 for d in durations)
    runs = len(durations)
    assert fake.calls == runs + 1  # one warm-up call that is checked but not timed
    if mode == "leaderboard":  # fresh inputs and a re-check on every run
        assert fake.checks == runs + 1 and len(fake.seeds) == runs + 1
    else:
        assert fake.checks == 1 and len(fake.seeds) == 1 + -(-runs // evaluator.FRESH_EVERY)
    assert len(set(fake.seeds)) == len(fake.seeds)  # every regeneration uses a new seed


def test_leaderboard_mode_catches_a_kernel_that_goes_wrong_while_timed() -> None:
    ev = evaluator.Evaluator(io.StringIO(), None)
    fake = FakeTask(wrong_after=5)
    with pytest.raises(evaluator._Invalid, match="run 4: mismatch"):
        ev._time_case("leaderboard", {"size": 4, "seed": 1}, fake.kernel, fake.generate_input, fake.check)


def test_timing_loop_respects_its_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setitem(evaluator.BUDGET_S, "benchmark", 0.05)
    ev = evaluator.Evaluator(io.StringIO(), None)
    fake = FakeTask()

    def slow_kernel(data: Any) -> Any:
        time.sleep(0.02 * (1 + fake.calls % 3))  # noisy enough never to reach the error target
        return fake.kernel(data)

    durations = ev._time_case(
        "benchmark", {"size": 4, "seed": 1}, slow_kernel, fake.generate_input, fake.check
    )
    assert evaluator.MIN_RUNS <= len(durations) < 10


def test_check_accepts_reference_kernels_verdict_shapes() -> None:
    def verdict(value: object) -> Any:
        return lambda data, output: value

    assert evaluator._check(verdict((True, "")), None, None) == (True, "")
    assert evaluator._check(verdict((False, "bad")), None, None) == (False, "bad")
    assert evaluator._check(verdict(""), None, None) == (True, "")
    assert evaluator._check(verdict("mismatch"), None, None) == (False, "mismatch")
    assert evaluator._check(verdict(False), None, None)[0] is False
