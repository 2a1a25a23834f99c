"""The built-in evaluator: GPU MODE's interface in a real process, and its timing loop in this one."""

from __future__ import annotations

import ast
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness import judge, timing
from harness.phase_result import PhaseResult
from harness.protocol import EXIT_BAD_TEST_SPEC, EXIT_VALIDATION_FAILED, parse_kv

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
    env = dict(os.environ, POPCORN_FD=str(write_fd), PYTHONPATH=str(REPO), HARNESS_MAX_TIME_S="0.3")
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
    assert kv["test.0.status"] == "fail" and kv["test.0.error"] == (
        "RuntimeError: kernel exploded | "
        'submission.py:7 in custom_kernel: raise RuntimeError("kernel exploded")'
    )
    assert kv["test.1.status"] == "fail" and "mismatch found" in kv["test.1.error"]
    assert kv["test.2.status"] == "pass" and "test.2.error" not in kv


def test_benchmark_mode_times_each_case(tmp_path: Path) -> None:
    correct = (VECTORADD / "solutions" / "correct.py").read_text()
    code, kv = run_evaluator(make_task(tmp_path, correct), "benchmark", "size: 4096; seed: 7\n", seed=99)
    assert code == 0 and kv["check"] == "pass"
    [bench] = PhaseResult("benchmark", code, False, 1.0, kv).benchmarks()
    assert bench.passed and bench.spec == "size: 4096; seed: 7"
    assert timing.MIN_RUNS <= bench.runs <= timing.MAX_RUNS
    assert 0 < bench.best_ns <= bench.mean_ns <= bench.worst_ns and bench.err_ns <= bench.std_ns


def test_a_bad_tests_file_exits_113(tmp_path: Path) -> None:
    code, kv = run_evaluator(make_task(tmp_path, MIXED), "test", "size 127\n")
    assert code == EXIT_BAD_TEST_SPEC and kv == {}


def test_the_secret_seed_is_mixed_in_one_way(tmp_path: Path) -> None:
    assert judge.mix(5, 7) == judge.mix(5, 7) != judge.mix(5, 8) != judge.mix(6, 7)
    assert all(0 <= judge.mix(p, 7) < 2**48 for p in range(100))
    # a submission that is right only on the public inputs passes the public run, fails the hidden one
    public_only = """
import torch
from reference import generate_input
KNOWN = {float(generate_input(size=8, seed=5)[0].sum()): None}

def custom_kernel(data):
    a, b = data
    return a + b if float(a.sum()) in KNOWN else a - b
"""
    task = make_task(tmp_path, public_only)
    assert run_evaluator(task, "test", "size: 8; seed: 5\n")[1]["check"] == "pass"
    code, kv = run_evaluator(task, "test", "size: 8; seed: 5\n", seed=7)
    assert code == EXIT_VALIDATION_FAILED and "mismatch found" in kv["test.0.error"]


def _uncantor(z: int) -> tuple[int, int]:
    w = (math.isqrt(8 * z + 1) - 1) // 2
    b = z - w * (w + 1) // 2
    return w - b, b


def test_the_worker_never_sees_a_value_from_which_the_secret_follows(tmp_path: Path) -> None:
    # the submission reads every request the worker gets (the case, from the frames above its call)
    seen = tmp_path / "seen"
    spy = f"""
import sys
def custom_kernel(data):
    frame = sys._getframe(1)
    while frame is not None and "case" not in frame.f_locals:
        frame = frame.f_back
    open({str(seen)!r}, "a").write(repr(frame.f_locals["case"]) + "\\n")
    a, b = data
    return a + b
"""
    secret = 987654321
    code, kv = run_evaluator(make_task(tmp_path, spy), "benchmark", "size: 8; seed: 5\n", seed=secret)
    assert code == 0, kv
    requests = [ast.literal_eval(line) for line in seen.read_text().splitlines()]
    assert requests and all(str(secret) not in repr(r) for r in requests)
    for request in requests:
        assert request["seed"] != 5  # the secret changed the input
        assert secret not in _uncantor(request["seed"])  # no Cantor pair of (public, secret)


def test_profile_mode_sends_each_table_whole(tmp_path: Path) -> None:
    correct = (VECTORADD / "solutions" / "correct.py").read_text()
    cases = "size: 4096; seed: 7\nsize: 1024; seed: 8\n"
    code, kv = run_evaluator(make_task(tmp_path, correct), "profile", cases)
    assert code == 0 and kv["check"] == "pass"
    profiles = PhaseResult("profile", code, False, 1.0, kv).profiles()
    assert [p.spec for p in profiles] == ["size: 4096; seed: 7", "size: 1024; seed: 8"]
    for profile in profiles:  # torch.profiler's table, its lines kept
        assert "aten::add" in profile.report and "Self CPU time total" in profile.report
        assert len(profile.report.splitlines()) >= 5
