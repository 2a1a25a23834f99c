"""Multi-GPU tasks in the harness, on a CPU: the built-in evaluator starts the task's ranks in one sandbox
(harness/ranks.py), they meet over gloo on the sandbox's loopback, and every rank's output is checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.ranks import rank_env, rank_inputs, takes_rank
from harness.runner import load_spec
from tests.unit.test_harness_runner import REPO, run_bundle

ALLREDUCE = REPO / "problems" / "allreduce_sum"
SPEC = {"tests": [{"size": 127, "seed": 4242}, {"size": 300, "seed": 7}],
        "benchmarks": [{"size": 4096, "seed": 21}], "gpus": 2}  # fmt: skip


def solution(name: str) -> str:
    return (ALLREDUCE / "solutions" / f"{name}.py").read_text()


def test_two_ranks_all_reduce_over_gloo_in_the_sandbox_and_rank(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, solution("correct"), "leaderboard", problem=ALLREDUCE, **SPEC)
    assert result.passed, result.failure_message
    assert [t.passed for t in result.tests] == [True, True]
    (bench,) = result.benchmarks
    assert bench.passed and bench.runs >= 3 and 0 < bench.best_ns <= bench.mean_ns
    assert result.score("geom") is not None


def test_a_reduce_scatter_solution_passes_unconfined_too(tmp_path: Path) -> None:
    result = run_bundle(
        tmp_path, solution("reduce_scatter"), "test", problem=ALLREDUCE, isolation="none", **SPEC
    )
    assert result.passed, result.failure_message


def test_the_slowest_ranks_time_is_the_calls_time(tmp_path: Path) -> None:
    """Rank 1 dawdles 20 ms after the collective: rank 0's own time is short, the call's is not."""
    code = (
        "import time\nimport torch.distributed as dist\nfrom task import input_t, output_t\n\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    x, _seed, _world = data\n"
        "    total = x.clone()\n"
        "    dist.all_reduce(total)\n"
        "    if dist.get_rank() == 1:\n"
        "        time.sleep(0.02)\n"
        "    return total\n"
    )
    result = run_bundle(tmp_path, code, "leaderboard", problem=ALLREDUCE, **SPEC)
    assert result.passed, result.failure_message
    assert result.benchmarks[0].best_ns >= 20e6


def test_a_rank_whose_output_is_wrong_fails_the_run_naming_the_rank(tmp_path: Path) -> None:
    result = run_bundle(tmp_path, solution("wrong"), "leaderboard", problem=ALLREDUCE, **SPEC)
    assert not result.passed and result.score("geom") is None
    message = result.failure_message or ""
    assert "rank 0: mismatch found" in message, message


def test_a_rank_that_raises_fails_the_run_naming_the_rank(tmp_path: Path) -> None:
    """Rank 1 fails on purpose (it knows its rank and the world size from torch.distributed): the run
    says which rank failed and why."""
    code = (
        "import torch.distributed as dist\nfrom task import input_t, output_t\n\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    x, _seed, _world = data\n"
        "    if dist.get_rank() == 1:\n"
        "        raise ValueError(f'rank {dist.get_rank()} of {dist.get_world_size()} refuses')\n"
        "    return x * 2\n"
    )
    result = run_bundle(tmp_path, code, "test", problem=ALLREDUCE, **SPEC)
    message = result.failure_message or ""
    assert not result.passed and "rank 1: ValueError: rank 1 of 2 refuses" in message, message


def test_a_rank_gets_its_rank_and_the_runs_world_size() -> None:
    def generate_input(**case: object) -> dict[str, object]:
        return case

    assert rank_inputs(generate_input, 1, 4, size=8, world_size=2) == {"size": 8, "rank": 1, "world_size": 4}
    env = rank_env(1, 2, 29500)
    assert env["RANK"] == "1" and env["WORLD_SIZE"] == "2" and env["MASTER_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("gpus", [0, 65, "2", True])
def test_a_spec_with_an_impossible_gpu_count_is_refused(tmp_path: Path, gpus: object) -> None:
    (tmp_path / "spec.json").write_text(json.dumps({"run_id": "r", "mode": "test", "gpus": gpus}))
    with pytest.raises(ValueError, match="gpus must be a whole number of GPUs per run"):
        load_spec(tmp_path)


def test_a_rank_that_ends_stops_the_run_with_a_message(tmp_path: Path) -> None:
    """Rank 1's process exits in the middle of a call: the launcher stops rank 0 (it would wait in its
    collective), and the run fails saying a rank ended, instead of hanging."""
    code = (
        "import os\nimport torch.distributed as dist\nfrom task import input_t, output_t\n\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    x, _seed, _world = data\n"
        "    if dist.get_rank() == 1:\n"
        "        os._exit(3)\n"
        "    total = x.clone()\n"
        "    dist.all_reduce(total)\n"
        "    return total\n"
    )
    result = run_bundle(tmp_path, code, "test", problem=ALLREDUCE, **SPEC)
    message = result.failure_message or ""
    assert not result.passed and "a rank of the submission" in message and "ended unexpectedly" in message, (
        message
    )


def test_a_task_whose_inputs_know_no_rank_runs_one_process_that_sees_the_gpus(tmp_path: Path) -> None:
    """``gpus: 2`` on a task whose generate_input takes no rank (vectoradd's): one user-code process,
    which sees the job's GPUs, as the task wrote it."""
    result = run_bundle(
        tmp_path, (REPO / "problems/vectoradd/solutions/correct.py").read_text(), "test", gpus=2
    )
    assert result.passed, result.failure_message
    assert all("ranks" not in phase.kv for phase in result.phases)


def test_a_generate_input_takes_a_rank_when_it_names_rank_and_world_size() -> None:
    def distributed(rank: int, world_size: int, size: int, seed: int) -> None: ...

    def single(size: int, seed: int) -> None: ...

    assert takes_rank(distributed) and not takes_rank(single) and not takes_rank(len)
