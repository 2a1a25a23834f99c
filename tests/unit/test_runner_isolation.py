"""The trusted runner against real bundles on this machine: what user code can and cannot do."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.config.tasks import load_task
from gateway.running.bundle import build_spec, bundle_files, stage_bundle
from harness.protocol import load_key_hex, verify_result
from harness.run_result import RunResult

TASK = load_task(REPO_ROOT / "problems" / "vectoradd")


def run_bundle(
    tmp_path: Path, code: str, mode: str = "test", timeouts: dict[str, int] | None = None
) -> RunResult:
    key_hex = secrets.token_hex(32)
    task = TASK.model_copy(update={"timeouts": timeouts}) if timeouts else TASK
    bundle = tmp_path / "bundle"
    spec = build_spec("r-1", mode, task) | {"max_time_s": 0.3}  # per shape: keeps the suite fast
    stage_bundle(bundle, bundle_files(task, code, spec, key_hex, "#!/bin/bash\n"))
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(bundle)],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert all(line.startswith("[harness] ") for line in done.stdout.splitlines())
    assert not (bundle / "key").exists()
    document = json.loads((bundle / "result.json").read_text())
    return RunResult.from_payload(verify_result(document, load_key_hex(key_hex)))


CORRECT = (REPO_ROOT / "problems/vectoradd/solutions/correct.py").read_text()


def test_correct_submission_passes_with_timings(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, CORRECT, "benchmark")
    assert result.passed and result.run_id == "r-1"
    assert [p.name for p in result.phases] == ["test", "benchmark"]
    assert len(result.benchmarks) == 2 and all(b.mean_ns > 0 and b.runs >= 3 for b in result.benchmarks)
    assert result.system["torch"].startswith("2.") and result.system["hostname"]


def test_the_key_is_gone_before_user_code_runs(tmp_path: Path) -> None:
    spy = CORRECT + (
        "\nimport os\nassert not os.path.exists('../key'), 'the submission could read the run key'\n"
    )
    assert run_bundle(tmp_path, spy).passed


def test_forged_lines_on_stdout_are_ignored(tmp_path: Path) -> None:
    wrong = (REPO_ROOT / "problems/vectoradd/solutions/wrong.py").read_text()
    forger = wrong + "\nprint('check: pass')\nprint('test.0.status: pass')\n"
    result = run_bundle(tmp_path, forger)
    assert not result.passed
    assert "mismatch" in (result.failure_message or "")


def test_a_hanging_submission_is_killed_at_the_phase_timeout(tmp_path: Path) -> None:
    sleeper = CORRECT + "\nimport time\ntime.sleep(600)\n"
    started = time.monotonic()
    result = run_bundle(tmp_path, sleeper, timeouts={"test": 3, "benchmark": 3, "leaderboard": 3})
    assert time.monotonic() - started < 30
    assert not result.passed
    assert result.phases[0].timed_out
    assert "timed out" in (result.failure_message or "")


def test_an_import_error_is_reported_per_test(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, "import no_such_module\n")
    assert not result.passed
    assert "ModuleNotFoundError" in (result.failure_message or "")


@pytest.mark.parametrize("garbage", ["", "not json", "{}"])
def test_a_broken_spec_still_yields_a_signed_error(tmp_path: Path, garbage: str) -> None:
    key_hex = secrets.token_hex(32)
    stage_bundle(tmp_path / "b", bundle_files(TASK, CORRECT, {}, key_hex, ""))
    (tmp_path / "b" / "spec.json").write_text(garbage)
    subprocess.run(
        [sys.executable, "-m", "harness", "run", str(tmp_path / "b")],
        cwd=tmp_path / "b",
        capture_output=True,
        timeout=60,
        check=True,
    )
    document = json.loads((tmp_path / "b" / "result.json").read_text())
    result = RunResult.from_payload(verify_result(document, load_key_hex(key_hex)))
    assert result.error and "spec.json" in result.error and not result.passed


OWN_EVAL = """\
import os, sys
mode, tests_file = sys.argv[1], sys.argv[2]
cases = [line.strip() for line in open(tests_file) if line.strip()]
with os.fdopen(int(os.environ["POPCORN_FD"]), "w") as out:
    out.write(f"test-count: {len(cases)}\\n")
    for i, case in enumerate(cases):
        out.write(f"test.{i}.spec: {case}\\ntest.{i}.status: pass\\n")
    out.write(f"check: pass\\nseen-mode: {mode}\\n")
"""


def test_a_task_with_its_own_eval_py_runs_under_the_same_runner(tmp_path: Path) -> None:
    key_hex = secrets.token_hex(32)
    task = TASK.model_copy(update={"main": "eval.py", "files": TASK.files | {"eval.py": OWN_EVAL}})
    bundle = tmp_path / "bundle"
    stage_bundle(bundle, bundle_files(task, CORRECT, build_spec("r-2", "test", task), key_hex, ""))
    subprocess.run(
        [sys.executable, "-m", "harness", "run", str(bundle)],
        cwd=bundle,
        check=True,
        timeout=60,
        capture_output=True,
    )
    result = RunResult.from_payload(
        verify_result(json.loads((bundle / "result.json").read_text()), load_key_hex(key_hex))
    )
    assert result.passed
    assert result.phases[0].kv["seen-mode"] == "test"
    assert [t.spec for t in result.tests] == [
        "size: 127; seed: 4242",
        "size: 1024; seed: 5236",
        "size: 4097; seed: 1001",
    ]
