"""Compiled submissions through the real runner: a ``lang: cu`` task built with this machine's nvcc in the
sandbox, and inline C++ (torch.utils.cpp_extension.load_inline) with its errors on the user's own lines
and its build cached for the run. What needs a GPU to pass skips without one."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.config.tasks import SUBMISSION_PLACEHOLDER, load_task
from harness.compile import find_nvcc
from harness.protocol import load_key_hex, verify_result
from harness.run_result import RunResult
from tests.unit.test_harness_runner import REPO, run_bundle, run_runner

VECTORADD_CU = REPO / "problems" / "vectoradd_cu"
EVAL_PY = Path(__file__).parent / "refkernels_task" / "eval.py"  # a task's own evaluator
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="needs nvcc (the CUDA toolkit)")
torch = pytest.importorskip("torch")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def run_cu(
    tmp_path: Path, solution: str, mode: str = "test", code: str | None = None, **spec: Any
) -> RunResult:
    """One run of the vectoradd_cu task on ``solutions/<solution>`` (or ``code`` by that name), staged as the
    gateway stages it."""
    task = load_task(VECTORADD_CU)
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "harness", bundle / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (bundle / "task").mkdir()
    for name, content in task.files.items():
        if content == SUBMISSION_PLACEHOLDER:
            content = code if code is not None else (VECTORADD_CU / "solutions" / solution).read_text()
        (bundle / "task" / name).write_text(content)
    full_spec = {
        "run_id": "r-cu", "mode": mode, "lang": "cu", "main": task.main, "submission": task.submission_name,
        "file_name": solution, "tests": task.tests, "benchmarks": task.benchmarks, "seed": None,
        "timeouts": task.timeouts, "max_time_s": 0.3,
    } | spec  # fmt: skip
    (bundle / "spec.json").write_text(json.dumps(full_spec))
    key_hex = secrets.token_hex(32)
    (bundle / "key").write_text(key_hex + "\n")
    os.chmod(bundle / "key", 0o600)
    done = run_runner(bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((bundle / "result.json").read_text())
    return RunResult.from_payload(verify_result(document, load_key_hex(key_hex)))


def test_the_cu_example_task_loads() -> None:
    task = load_task(VECTORADD_CU)
    assert task.lang == "cu" and task.main == "eval.cu" and task.submission_name == "submission.cu"
    assert {"eval.cu", "task.h", "reference.cuh"} <= set(task.files)
    assert task.templates["CUDA"] == (VECTORADD_CU / "submission.cu").read_text()
    assert task.timeouts["compile"] == 180  # nvcc's own limit, apart from the phases'
    for solution in ("correct.cu", "wrong.cu", "compile_error.cu"):
        assert (VECTORADD_CU / "solutions" / solution).is_file()


@needs_nvcc
def test_a_cu_submission_compiles_in_the_sandbox_and_its_program_is_the_evaluator(tmp_path: Path) -> None:
    result = run_cu(tmp_path, "correct.cu")
    assert result.error is None, result.error
    assert [p.name for p in result.phases] == ["test"]
    if torch.cuda.is_available():
        assert result.passed, result.failure_message
    else:  # the program nvcc built ran and said what it lacks
        assert not result.passed and "CUDA error" in (result.failure_message or ""), result.failure_message


@needs_nvcc
def test_a_cu_syntax_error_comes_back_on_the_users_line_before_any_test(tmp_path: Path) -> None:
    result = run_cu(tmp_path, "compile_error.cu", "leaderboard")
    assert result.phases == []  # no test ran
    error = result.error or ""
    assert error.startswith("compile error:"), error
    assert 'compile_error.cu(12): error: expected a ";"' in error, error
    assert str(tmp_path) not in error and "submission.cu" not in error


@needs_nvcc
def test_the_compile_cannot_read_outside_its_task(tmp_path: Path) -> None:
    secret = tmp_path / "sibling-key"  # beside the bundle: as another run's bundle is in the work folder
    secret.write_text("TOPSECRET\n")
    result = run_cu(tmp_path, "snooping.cu", code=f'#include "{secret}"\n')
    error = result.error or ""
    assert result.phases == [] and "No such file or directory" in error and "TOPSECRET" not in error, error


BROKEN_INLINE = '''import torch
from torch.utils.cpp_extension import load_inline

SOURCE = """
int twice(int x) {
    return x * 2
}
"""
load_inline("broken", cpp_sources=SOURCE, no_implicit_headers=True, is_python_module=False)


def custom_kernel(data):
    return data[0] + data[1]
'''


def test_an_inline_cpp_compile_error_names_the_users_file_and_line(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, BROKEN_INLINE, "test", file_name="my_kernel.py")
    message = result.failure_message or ""
    assert "compiling the inline extension 'broken' failed: my_kernel.py:6: error: expected" in message
    assert "`return x * 2`" in message and str(tmp_path) not in message


# built once per run: the task's own eval.py starts a process per phase, and the second finds the first's
CACHED_INLINE = """import os, sys
import torch
from torch.utils.cpp_extension import load_inline

BUILT = os.path.join(os.environ["TORCH_EXTENSIONS_DIR"], "twice", "twice.so")
print(f"cached before load: {os.path.exists(BUILT)}", file=sys.stderr)
load_inline("twice", cpp_sources="int twice(int x) { return 2 * x; }", no_implicit_headers=True,
            is_python_module=False)


def custom_kernel(data):
    return data[0] + data[1]
"""


def test_an_inline_extension_is_built_once_per_run_outside_the_timed_calls(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, CACHED_INLINE, "leaderboard", main="eval.py", extra_files=[EVAL_PY])
    assert result.passed, result.failure_message
    test, ranked = result.phases
    assert "cached before load: False" in test.stderr_tail
    assert "cached before load: True" in ranked.stderr_tail
    # the cache is the run's: gone with it, and never in the bundle
    assert not list((tmp_path / "bundle").rglob("twice.so"))


@needs_gpu
@needs_nvcc
def test_the_cu_vectoradd_passes_and_ranks_on_the_gpu(tmp_path: Path) -> None:
    result = run_cu(tmp_path, "correct.cu", "leaderboard")
    assert result.passed, result.failure_message
    assert result.score("geom") is not None and all(b.runs >= 3 for b in result.benchmarks)
    wrong = run_cu(tmp_path / "wrong", "wrong.cu", "test")
    assert not wrong.passed and "mismatch found" in (wrong.failure_message or "")


@needs_gpu
@pytest.mark.parametrize("solution", ["cuda_inline", "triton"])
def test_inline_cuda_and_triton_solutions_pass_on_the_gpu(tmp_path: Path, solution: str) -> None:
    code = (REPO / "problems" / "vectoradd" / "solutions" / f"{solution}.py").read_text()
    result = run_bundle(tmp_path, code, "leaderboard", file_name=f"{solution}.py")
    assert result.passed, result.failure_message
    assert result.score("geom") is not None
