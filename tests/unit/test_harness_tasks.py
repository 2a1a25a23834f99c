"""The example problems' solutions and a reference-kernels style task, through the real runner (CPU)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.unit.test_harness_runner import REPO, run_bundle

HEADER = "import torch\nfrom task import input_t, output_t\n"


def test_a_task_with_its_own_eval_py_runs_unchanged(tmp_path: Path) -> None:
    correct = (REPO / "problems/vectoradd/solutions/correct.py").read_text()
    result = run_bundle(tmp_path, correct, "leaderboard", main="eval.py", extra_files=[EVAL_PY])
    assert result.passed, result.failure_message
    assert [p.name for p in result.phases] == ["test", "leaderboard"]
    assert all(b.runs == 20 and b.best_ns == b.mean_ns > 0 for b in result.benchmarks)
    wrong = (REPO / "problems/vectoradd/solutions/wrong.py").read_text()
    failed = run_bundle(tmp_path / "wrong", wrong, "leaderboard", main="eval.py", extra_files=[EVAL_PY])
    assert not failed.passed and "mismatch found" in (failed.failure_message or "")


EVAL_PY = Path(__file__).parent / "refkernels_task" / "eval.py"


def test_softmax_correct_slow_and_wrong_pass_pass_fail_and_scores_order(tmp_path: Path) -> None:
    softmax = REPO / "problems/softmax"
    spec = {"tests": [{"rows": 3, "cols": 7, "seed": 11}, {"rows": 64, "cols": 129, "seed": 12}],
            "benchmarks": [{"rows": 64, "cols": 256, "seed": 21}]}  # fmt: skip
    scores: dict[str, float] = {}
    for name in ("correct", "slow"):
        result = run_bundle(
            tmp_path / name, (softmax / "solutions" / f"{name}.py").read_text(), "leaderboard",
            problem=softmax, **spec,
        )  # fmt: skip
        assert result.passed, result.failure_message
        assert result.score("geom") is not None
        # the median, not the score (a mean): this shared 2-core machine preempts for milliseconds
        scores[name] = result.benchmarks[0].median_ns or 0.0
    assert 0 < scores["correct"] < scores["slow"]
    wrong = run_bundle(tmp_path / "wrong", (softmax / "solutions/wrong.py").read_text(), "leaderboard",
                       problem=softmax, **spec)  # fmt: skip
    assert not wrong.passed and wrong.score("geom") is None
    message = wrong.failure_message or ""
    assert "mismatch found" in message and "NaN" in message and "max abs error" in message


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def custom_kernel(data)\n    return data\n", "SyntaxError: expected ':' (submission.py, line 1)"),
        ("import no_such_module\n", "ModuleNotFoundError: No module named 'no_such_module'"),
        (HEADER + "def kernel(data):\n    return data\n", "defines no function custom_kernel"),
        (HEADER + "def custom_kernel(data):\n    return [1.0, 2.0]\n", "expected a torch.Tensor, got list"),
        (
            HEADER + "def custom_kernel(data):\n    a, b = data\n    return helper(a)\n\n"
            "def helper(a):\n    return a.view(3, -1)\n",
            "RuntimeError: shape '[3, -1]' is invalid",
        ),
        (HEADER + "def custom_kernel(data):\n    raise MemoryError('tried 80 GiB')\n", "out of memory"),
    ],
    ids=["syntax", "import", "no-kernel", "wrong-type", "traceback", "oom"],
)
def test_errors_a_competitor_can_act_on(tmp_path: Path, code: str, expected: str) -> None:
    result = run_bundle(tmp_path, code)
    message = result.failure_message or ""
    assert not result.passed and expected in message, message
    if "helper" in code:  # the frames of the submission's own files, innermost last
        assert "submission.py:5 in custom_kernel" in message and "submission.py:8 in helper" in message


def test_copying_a_task_folder_does_not_need_the_gateway(tmp_path: Path) -> None:
    # the harness needs only the bundle: no gateway import on the compute node
    copy = tmp_path / "harness"
    shutil.copytree(REPO / "harness", copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert not any(re.search(r"^(from|import) gateway", p.read_text(), re.M) for p in copy.glob("*.py"))


def test_a_task_with_its_own_eval_py_shows_tracebacks_with_the_users_file(tmp_path: Path) -> None:
    raises = HEADER + "\n\ndef custom_kernel(data: input_t) -> output_t:\n    raise ValueError('no kernel')\n"
    result = run_bundle(tmp_path, raises, "test", main="eval.py", extra_files=[EVAL_PY], file_name="mine.py")
    assert not result.passed
    tail = result.phases[0].stderr_tail
    assert 'File "mine.py", line 6, in custom_kernel' in tail and 'File "eval.py", line' in tail
    assert "submission.py" not in tail and str(tmp_path) not in tail
    assert result.failure_message == (
        "test (size: 127; seed: 4242) failed: ValueError: no kernel (mine.py, line 6, in custom_kernel)"
    )


GROUPED = Path(__file__).resolve().parents[1] / "fixtures/reference_kernels/problems/pmpp/grouped_add_py"
GROUPED_CASES = {
    "tests": [{"m": [96, 128], "g": 2, "seed": 1}, {"m": [7, 300, 64], "g": 3, "seed": 2}],
    "benchmarks": [{"m": [4096, 8192], "g": 2, "seed": 3}],
}


@pytest.mark.parametrize("main", ["eval.py", None], ids=["own-eval", "built-in"])
def test_list_arguments_reach_the_task_through_its_own_and_the_builtin_evaluator(
    tmp_path: Path, main: str | None
) -> None:
    # the fixture's shared eval.py reads 'm: [96, 128]' with reference-kernels' regex; generate_input
    # refuses anything but a list of one size per group
    extra = [GROUPED.parent / "eval.py"] if main else []
    correct = (GROUPED / "submission.py").read_text()
    result = run_bundle(
        tmp_path, correct, "leaderboard", problem=GROUPED, main=main, extra_files=extra, **GROUPED_CASES
    )
    assert result.passed, result.failure_message
    assert [t.spec for t in result.tests] == ["m: [96, 128]; g: 2; seed: 1", "m: [7, 300, 64]; g: 3; seed: 2"]
    assert [b.spec for b in result.benchmarks] == ["m: [4096, 8192]; g: 2; seed: 3"]
    wrong = correct.replace("a + b", "a - b")
    failed = run_bundle(
        tmp_path / "wrong", wrong, "test", problem=GROUPED, main=main, extra_files=extra, **GROUPED_CASES
    )
    assert not failed.passed and "mismatch found" in (failed.failure_message or "")
