"""Profile mode under Nsight Compute, harness side: a fake ``ncu`` on the job's PATH (the one seam: no GPU
or Nsight Compute here) wraps the submission's worker inside the real sandbox, and the runner returns its
report in the bundle, its size and digest signed into result.json; without ncu, or over the cap, it says
why."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from harness import ncu
from harness.run_result import RunResult
from tests.unit.test_harness_runner import run_bundle, solution

# ncu's options as harness/ncu.py passes them, then the command it profiles: run it (its descriptors
# inherited, as ncu's launcher does) and write a report naming it, padded by the number in the file
# "pad" beside it (the sandbox passes no environment of ours in)
FAKE_NCU = """#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    --export) report="$2"; shift 2 ;;
    --force-overwrite) shift ;;
    --*) shift 2 ;;
    *) break ;;
  esac
done
"$@"
code=$?
printf 'fake ncu profiled: %s\\n' "$*" > "$report.ncu-rep"
pad="$(dirname "$0")/pad"
if [ -f "$pad" ]; then head -c "$(cat "$pad")" /dev/zero >> "$report.ncu-rep"; fi
exit $code
"""


@pytest.fixture
def fake_ncu(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("nsight-compute")
    tool = folder / "ncu"
    tool.write_text(FAKE_NCU)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    return tool


def profile(tmp_path: Path, **spec: object) -> tuple[Path, RunResult]:
    timeouts = {"test": 60, "profile": 120}
    result = run_bundle(tmp_path, solution("correct"), "profile", timeouts=timeouts, **({"ncu": True} | spec))
    return tmp_path / "bundle", result


def test_the_workers_run_under_ncu_in_the_sandbox_and_the_report_comes_back_signed(
    tmp_path: Path, fake_ncu: Path
) -> None:
    bundle, result = profile(tmp_path)
    assert result.passed, result.failure_message
    report = bundle / ncu.REPORT_NAME
    data = report.read_bytes()
    assert data.startswith(b"fake ncu profiled: ") and b"harness.usercode" in data  # ncu ran the worker
    assert result.ncu == {
        "file": ncu.REPORT_NAME,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert len(result.profiles) == 2  # the profiler's tables as well


def test_without_ncu_on_the_path_the_result_says_so(tmp_path: Path) -> None:
    bundle, result = profile(tmp_path)
    assert result.passed
    assert result.ncu is not None and "ncu) is not on the job's PATH" in result.ncu["error"]
    assert not (bundle / ncu.REPORT_NAME).exists()


def test_a_report_over_the_cap_is_dropped_with_a_message(tmp_path: Path, fake_ncu: Path) -> None:
    (fake_ncu.parent / "pad").write_text(str(ncu.REPORT_LIMIT + 1))
    bundle, result = profile(tmp_path)
    assert result.ncu is not None and "over the 20 MiB this gateway keeps" in result.ncu["error"]
    assert not (bundle / ncu.REPORT_NAME).exists()


def test_ncu_is_asked_for_only_by_spec_json(tmp_path: Path, fake_ncu: Path) -> None:
    bundle, result = profile(tmp_path, ncu=False)
    assert result.ncu is None and not (bundle / ncu.REPORT_NAME).exists()
