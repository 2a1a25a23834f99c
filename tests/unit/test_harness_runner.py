"""The trusted runner end to end: real bundles in tmp_path, real evaluator processes, on this CPU."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.protocol import load_key_hex, shown_file_name, verify_result
from harness.run_result import RunResult

REPO = Path(__file__).resolve().parents[2]
VECTORADD = REPO / "problems" / "vectoradd"
TASK_FILES = {"task.py": "task.py", "reference.py": "reference.py", "utils.py": "../utils.py"}
TESTS = [{"size": 127, "seed": 4242}, {"size": 1024, "seed": 5236}]
BENCHMARKS = [{"size": 16384, "seed": 6256}, {"size": 65536, "seed": 8841}]


def solution(name: str) -> str:
    return (VECTORADD / "solutions" / f"{name}.py").read_text()


def make_bundle(
    tmp_path: Path,
    code: str,
    mode: str = "test",
    problem: Path = VECTORADD,
    extra_files: tuple[Path, ...] | list[Path] = (),
    **spec: Any,
) -> tuple[Path, str]:
    """A bundle as the gateway stages it: harness/, task/ with the submission, spec.json and key."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "harness", bundle / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (bundle / "task").mkdir()
    for name, source in TASK_FILES.items():
        shutil.copy(problem / source, bundle / "task" / name)
    for extra in extra_files:
        shutil.copy(extra, bundle / "task" / extra.name)
    (bundle / "task" / "submission.py").write_text(code)
    full_spec = {
        "run_id": "r-test",
        "mode": mode,
        "lang": "py",
        "main": None,
        "tests": TESTS,
        "benchmarks": BENCHMARKS,
        "ranking_by": "geom",
        "seed": None,
        "timeouts": {"test": 60, "benchmark": 60, "leaderboard": 60},
        "max_time_s": 0.3,  # per shape: keeps the suite fast
    } | spec
    (bundle / "spec.json").write_text(json.dumps(full_spec))
    key_hex = secrets.token_hex(32)
    fd = os.open(bundle / "key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as key_file:
        key_file.write(key_hex + "\n")
    return bundle, key_hex


def run_runner(bundle: Path, isolation: str = "bubblewrap") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "run", str(bundle), "--isolation", isolation],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_bundle(tmp_path: Path, code: str, mode: str = "test", **spec: Any) -> RunResult:
    """One run of the runner on a fresh bundle (``isolation=`` its option, bubblewrap by default)."""
    isolation = str(spec.pop("isolation", "bubblewrap"))
    bundle, key_hex = make_bundle(tmp_path, code, mode, **spec)  # problem=, extra_files= pass through
    done = run_runner(bundle, isolation)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout and all(line.startswith("[harness] ") for line in done.stdout.splitlines())
    assert not (bundle / "key").exists()
    result_path = bundle / "result.json"
    assert stat.S_IMODE(result_path.stat().st_mode) == 0o644
    document = json.loads(result_path.read_text())
    return RunResult.from_payload(verify_result(document, load_key_hex(key_hex)))


def test_correct_submission_passes_the_leaderboard_with_a_score(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, solution("correct"), "leaderboard")
    assert result.passed, result.failure_message
    assert result.run_id == "r-test" and result.mode == "leaderboard" and result.error is None
    assert [p.name for p in result.phases] == ["test", "leaderboard"]
    assert [t.passed for t in result.tests] == [True, True]
    assert len(result.benchmarks) == 2
    for b in result.benchmarks:
        assert b.passed and b.runs >= 3 and 0 < b.best_ns <= b.mean_ns <= b.worst_ns, b
    score = result.score("geom")
    assert score is not None and 0 < score < 1
    assert result.system["hostname"] and result.system["python"] and result.system["torch"]


def test_wrong_submission_fails_with_the_mismatch_and_skips_timing(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, solution("wrong"), "leaderboard")
    assert not result.passed and result.score("geom") is None
    assert [p.name for p in result.phases] == ["test"]
    assert result.phases[0].exit_code == 112
    assert not any(t.passed for t in result.tests)
    assert "mismatch found" in (result.failure_message or "")


SLEEPER = """
import subprocess, time
from task import input_t, output_t

def custom_kernel(data: input_t) -> output_t:
    a, b = data
    if a.numel() >= 16384:  # benchmark sizes only: the test phase passes
        subprocess.Popen(["sleep", "SLEEP_SECONDS"])  # found by its argument from outside the sandbox
        while True:
            time.sleep(1)
    return a + b
"""


def sleepers(seconds: str) -> list[int]:
    """Live processes (zombies aside) running ``sleep <seconds>``, seen from this machine."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            cmdline = (status.parent / "cmdline").read_bytes().split(b"\0")
            alive = "State:\tZ" not in status.read_text()
        except OSError:
            continue
        if cmdline[:2] == [b"sleep", seconds.encode()] and alive:
            found.append(int(status.parent.name))
    return found


def test_a_phase_timeout_kills_the_whole_process_group_quickly(tmp_path: Path) -> None:
    seconds = f"{1000 + secrets.randbelow(10**6)}"
    began = time.monotonic()
    code = SLEEPER.replace("SLEEP_SECONDS", seconds)
    result = run_bundle(tmp_path, code, "benchmark", timeouts={"test": 60, "benchmark": 2})
    elapsed = time.monotonic() - began
    test, bench = result.phases
    assert test.passed
    assert bench.timed_out and bench.exit_code is None and 2 <= bench.duration_s < 4
    assert not result.passed and "timed out after 2 s" in (result.failure_message or "")
    assert elapsed < 15
    for _ in range(50):  # the killed child may need a moment to be reaped by init
        if not sleepers(seconds):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the submission's child survived the phase timeout")


SPOOFER = """
import os
from task import input_t, output_t

# the key must be gone before any user code runs
print("key file:", "present" if os.path.exists("../key") else "absent")
# stdout is never parsed for results: these lines must not make a wrong submission pass
print("check: pass\\ntest-count: 0")

def custom_kernel(data: input_t) -> output_t:
    a, b = data
    return a - b
"""


def test_fake_stdout_lines_are_ignored_and_the_key_is_gone(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, SPOOFER)
    phase = result.phases[0]
    assert "check: pass" in phase.stdout_tail and "key file: absent" in phase.stdout_tail
    assert phase.kv["check"] == "fail" and phase.kv["test-count"] == "2"
    assert not result.passed and "mismatch found" in (result.failure_message or "")


FORGER = """
import os, stat
from task import input_t, output_t

# write a forged verdict into every pipe this process holds other than stdout/stderr
for name in os.listdir("/proc/self/fd"):
    fd = int(name)
    if fd > 2:
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, b"check: pass\\n")
        except OSError:
            pass

def custom_kernel(data: input_t) -> output_t:
    a, b = data
    return a + b
"""


def test_a_forged_line_cannot_reach_the_result_channel(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, FORGER)
    phase = result.phases[0]
    # the submission's process holds no result channel: its forged line broke only its own pipe
    assert phase.kv["check"] == "fail" and phase.exit_code == 112
    assert "broke its channel" in (result.failure_message or "")
    assert not result.passed


TAMPERER = """
from pathlib import Path
from task import input_t, output_t

# try to make the next phase's checker accept anything
Path("reference.py").write_text(Path("reference.py").read_text() + "\\n# tampered\\n")

def custom_kernel(data: input_t) -> output_t:
    a, b = data
    return a + b
"""


def test_a_submission_cannot_rewrite_its_task_in_the_sandbox(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, TAMPERER, "benchmark")
    assert [p.name for p in result.phases] == ["test"]
    assert "Read-only file system" in (result.failure_message or "")
    assert "tampered" not in (tmp_path / "bundle" / "task" / "reference.py").read_text()
    assert not result.passed and result.score("geom") is None


def test_a_submission_that_rewrites_the_task_unconfined_fails_the_run(tmp_path: Path) -> None:
    """On a site without isolation the rewrite happens, and the runner's digest of the bundle sees it."""
    result = run_bundle(tmp_path, TAMPERER, "benchmark", isolation="none")
    assert [p.name for p in result.phases] == ["test"]
    assert result.error is not None and "task/reference.py" in result.error
    assert not result.passed and result.score("geom") is None


def test_a_bad_spec_still_gives_a_signed_result_with_the_error(tmp_path: Path) -> None:
    bundle, key_hex = make_bundle(tmp_path, solution("correct"), mode="sprint")
    done = run_runner(bundle)
    assert done.returncode == 0, done.stderr
    payload = verify_result(json.loads((bundle / "result.json").read_text()), load_key_hex(key_hex))
    result = RunResult.from_payload(payload)
    assert result.phases == [] and not result.passed
    assert result.error is not None and "mode" in result.error


def test_a_missing_key_means_no_result_and_exit_2(tmp_path: Path) -> None:
    bundle, _ = make_bundle(tmp_path, solution("correct"))
    (bundle / "key").unlink()
    done = run_runner(bundle)
    assert done.returncode == 2
    assert "key" in done.stdout and not (bundle / "result.json").exists()


RAISES = """import torch
from task import input_t, output_t


def custom_kernel(data: input_t) -> output_t:
    a, b = data
    raise ValueError(f"no kernel for {a.numel()} elements")
"""


def test_errors_name_the_users_own_file_and_line_and_no_bundle_path(tmp_path: Path) -> None:
    bundle, key_hex = make_bundle(tmp_path, RAISES, file_name="my_kernel.py")
    done = run_runner(bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (bundle / "result.json").read_text()
    result = RunResult.from_payload(verify_result(json.loads(text), load_key_hex(key_hex)))
    assert not result.passed
    assert result.tests[0].error == (
        "ValueError: no kernel for 127 elements | my_kernel.py:7 in custom_kernel: "
        'raise ValueError(f"no kernel for {a.numel()} elements")'
    )
    assert "my_kernel.py:7 in custom_kernel" in (result.failure_message or "")
    assert "my_kernel.py:7 in custom_kernel" in done.stdout  # the progress line the gateway shows
    for shown in (text, done.stdout):
        assert "submission.py" not in shown and str(bundle) not in shown


def test_an_error_at_import_names_the_users_file(tmp_path: Path) -> None:
    code = "import torch\n\nraise ImportError('no module named kernels')\n"
    result = run_bundle(tmp_path, code, file_name="mine.py")
    assert result.tests[0].error == (
        "loading the submission failed: ImportError: no module named kernels | "
        "mine.py:3 in <module>: raise ImportError('no module named kernels')"
    )
    missing = run_bundle(tmp_path / "missing", "x = 1\n", file_name="mine.py")
    assert "mine.py defines no function custom_kernel(data)" in (missing.tests[0].error or "")


def test_a_hostile_file_name_shows_escaped_and_is_never_a_path(tmp_path: Path) -> None:
    # what check_code lets through (printable, no '/', at most 255) and what it never does, but which the
    # harness must survive all the same: a bidi override, a path
    name = 'it\'s "mine" ' + "ядро" * 60 + "\u202e/../../x.py"
    bundle, key_hex = make_bundle(tmp_path, RAISES, file_name=name)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    done = run_runner(bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    result = RunResult.from_payload(
        verify_result(json.loads((bundle / "result.json").read_text()), load_key_hex(key_hex))
    )
    shown = shown_file_name(name)
    assert shown.startswith("'it\\'s \"mine\" ядро") and shown.endswith("\\u202e/../../x.py'")
    assert len(shown) < 100  # cut in the middle
    raise_line = RAISES.splitlines()[6].strip()
    assert (result.tests[0].error or "").endswith(f"| {shown}:7 in custom_kernel: {raise_line}")
    assert name not in done.stdout and "\u202e" not in done.stdout
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.name != "result.json")
    assert after == [p for p in before if p.name != "key"]  # nothing made, moved or removed by its name
