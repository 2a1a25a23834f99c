"""The harness's CUDA path through the real runner, evaluator and worker: only where torch sees a GPU (it
skips on a CPU-only machine and in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_harness_runner import REPO, run_bundle, solution

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

HEADER = "import torch\nfrom task import input_t, output_t\n"
# about 2 ms of one SM spinning at H100's top clock (1.98 GHz); longer at any lower clock
SPIN_CYCLES = 4_000_000


def test_a_run_on_the_gpu_reports_it_in_the_system_info(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, solution("correct"), "benchmark")
    assert result.passed, result.failure_message
    system = result.system
    assert system["device"] == "cuda" and system["driver"] and system["cuda"], system
    assert system["gpu"] == torch.cuda.get_device_name(0), system
    # a kernel launch from Python costs microseconds: nothing real is below the CUDA floor
    assert all(b.best_ns > 1000 for b in result.benchmarks)


def test_gpu_time_bracketed_by_the_events_counts(tmp_path: Path) -> None:
    code = HEADER + (
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        f"    torch.cuda._sleep({SPIN_CYCLES})\n"
        "    return a + b\n"
    )
    result = run_bundle(tmp_path, code, "benchmark", benchmarks=[{"size": 1024, "seed": 3}])
    assert result.passed, result.failure_message
    [bench] = result.benchmarks
    assert bench.best_ns >= 1e6, bench  # ~2 ms of GPU time between the events


def test_work_left_on_a_side_stream_is_timed(tmp_path: Path) -> None:
    # events on the launching stream see nothing of it; the host clock, after a device-wide sync, does
    code = HEADER + (
        "SIDE = torch.cuda.Stream()\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    SIDE.wait_stream(torch.cuda.current_stream())\n"
        "    with torch.cuda.stream(SIDE):\n"
        f"        torch.cuda._sleep({SPIN_CYCLES})\n"
        "        out = a + b\n"
        "    return out\n"
    )
    result = run_bundle(tmp_path, code, "leaderboard", benchmarks=[{"size": 1024, "seed": 3}])
    assert result.passed, result.failure_message
    [bench] = result.benchmarks
    assert bench.best_ns >= 1e6, bench  # ~2 ms of GPU time; the events alone would see ~20 us


def test_softmax_slow_scores_worse_than_correct_on_the_gpu(tmp_path: Path) -> None:
    softmax = REPO / "problems/softmax"
    spec = {
        "tests": [{"rows": 64, "cols": 129, "seed": 12}],
        "benchmarks": [{"rows": 128, "cols": 512, "seed": 22}],
    }
    scores: dict[str, float] = {}
    for name in ("correct", "slow"):
        code = (softmax / "solutions" / f"{name}.py").read_text()
        result = run_bundle(tmp_path / name, code, "leaderboard", problem=softmax, **spec)
        assert result.passed, result.failure_message
        scores[name] = result.score("geom") or 0.0
    assert 0 < 5 * scores["correct"] < scores["slow"], scores
