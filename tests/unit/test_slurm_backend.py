"""The Slurm backend at the command seam: what it runs, and how it reads what Slurm answers."""

from pathlib import Path

import pytest

from gateway.backends.base import JobHandle, JobRequest, job_name
from gateway.backends.slurm import SlurmBackend, parse_sacct, parse_sbatch_parsable, parse_squeue
from gateway.bundle import BundlePaths
from gateway.errors import BackendError
from gateway.render import TemplateRenderer
from gateway.settings import REPO_ROOT
from gateway.states import JobState
from tests.unit.fakes import FakeTransport, gamma_site, tiny_task

SITE = gamma_site()
TASK = tiny_task(files={"submission.py": "@SUBMISSION@", "reference.py": "x = 1\n"})


def backend(transport: FakeTransport) -> SlurmBackend:
    return SlurmBackend(SITE, transport, TemplateRenderer(REPO_ROOT / "templates"))


def handle(job_id: str) -> JobHandle:
    return JobHandle(f"run-{job_id}", job_id, BundlePaths.under("/w", f"run-{job_id}"))


def test_parse_sbatch_output_with_and_without_cluster() -> None:
    assert parse_sbatch_parsable("123\n") == "123"
    assert parse_sbatch_parsable("456;alpha\n") == "456"
    with pytest.raises(BackendError, match="no job id"):
        parse_sbatch_parsable("sbatch: error: Batch job submission failed\n")


def test_parse_squeue_and_sacct() -> None:
    states = parse_squeue("11|PENDING|Resources\n12|RUNNING|None\n13|COMPLETING|(null)\n")
    assert states["11"].state is JobState.PENDING and states["11"].reason == "Resources"
    assert states["12"].state is JobState.RUNNING and states["12"].reason is None
    assert states["13"].state is JobState.COMPLETING
    done = parse_sacct("14|COMPLETED|0:0\n15|CANCELLED by 1000|0:15\n16|OUT_OF_MEMORY|0:125\n")
    assert done["14"].state is JobState.COMPLETED
    assert done["15"].state is JobState.CANCELLED
    assert done["16"].state is JobState.OUT_OF_MEMORY


async def test_submit_uploads_bundle_and_sends_script_on_stdin() -> None:
    transport = FakeTransport(
        lambda argv, stdin: (0, "77;gamma\n", "") if argv[0] == "sbatch" else (0, "", "")
    )
    request = JobRequest(
        "abc",
        SITE,
        SITE.partitions[0],
        TASK,
        "def custom_kernel(x): return x\n",
        {"run_id": "abc"},
        "aa" * 32,
    )
    [job] = await backend(transport).submit([request])
    assert job.job_id == "77"
    assert str(job.bundle.root) == "/home/gwrun/runs/abc"
    assert transport.commands("mkdir") == [["mkdir", "-p", "--", "/home/gwrun/runs"]]
    [(_, remote, names)] = transport.uploads
    assert remote == "/home/gwrun/runs/abc"
    assert {
        "job.sh",
        "spec.json",
        "key",
        "task/submission.py",
        "task/reference.py",
        "harness/__init__.py",
    } <= set(names)
    sbatch_index = transport.calls.index(["sbatch", "--parsable"])
    script = transport.stdin[sbatch_index]
    assert script is not None and f"#SBATCH --job-name={job_name('abc')}" in script
    assert "#SBATCH --gres=gpu:h100:1" in script


async def test_one_squeue_for_many_jobs_then_sacct_only_for_the_missing() -> None:
    def answer(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        if argv[0] == "squeue":
            return 0, "1|RUNNING|None\n2|PENDING|Priority\n", ""
        if argv[0] == "sacct":
            assert argv[argv.index("-j") + 1] == "3"
            return 0, "3|COMPLETED|0:0\n", ""
        raise AssertionError(argv)

    transport = FakeTransport(answer)
    slurm = backend(transport)
    states = await slurm.status([handle("1"), handle("2"), handle("3")])
    assert [c[0] for c in transport.calls] == ["squeue", "sacct"]
    assert transport.calls[0][transport.calls[0].index("-j") + 1] == "1,2,3"
    assert states["1"].state is JobState.RUNNING
    assert states["2"].reason == "Priority"
    assert states["3"].state is JobState.COMPLETED


async def test_terminal_states_are_cached_and_never_asked_again() -> None:
    transport = FakeTransport(
        lambda argv, stdin: (0, "5|COMPLETED|0:0\n", "") if argv[0] == "squeue" else (1, "", "")
    )
    slurm = backend(transport)
    await slurm.status([handle("5")])
    again = await slurm.status([handle("5")])
    assert again["5"].state is JobState.COMPLETED
    assert len(transport.calls) == 1


async def test_a_job_gone_from_squeue_and_sacct_is_unknown_not_done() -> None:
    def answer(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        if argv[0] == "squeue":
            return 1, "", "slurm_load_jobs error: Invalid job id specified\n"
        return 0, "", ""

    states = await backend(FakeTransport(answer)).status([handle("9")])
    assert states["9"].state is JobState.UNKNOWN


async def test_sbatch_refusal_is_a_backend_error_with_slurms_message(tmp_path: Path) -> None:
    def answer(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        if argv[0] == "sbatch":
            return 1, "", "sbatch: error: invalid partition specified: h100\n"
        return 0, "", ""

    request = JobRequest("abc", SITE, SITE.partitions[0], TASK, "x = 1\n", {}, "00")
    with pytest.raises(BackendError, match="invalid partition"):
        await backend(FakeTransport(answer)).submit([request])
