"""The Slurm backend at the command seam: what it runs, and how it reads what Slurm answers."""

import io
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.config.site_parts import SlurmCommands
from gateway.core.errors import BackendError, CommandError, TransportError
from gateway.core.states import JobState
from gateway.running.backends.base import JobHandle, JobRequest, JobStatus, job_name
from gateway.running.backends.slurm import RESUBMIT_SCRIPT, SUBMIT_SCRIPT, SlurmBackend
from gateway.running.backends.slurm_output import parse_load, parse_sacct, parse_sbatch_parsable, parse_squeue
from gateway.running.bundle import BundlePaths
from gateway.running.jobscript import TemplateRenderer
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


def test_squeue_gives_a_pending_jobs_expected_start_only_when_slurm_has_one() -> None:
    states = parse_squeue(
        "11|PENDING|Resources|1796628000\n12|PENDING|Priority|N/A\n13|PENDING|Priority|0\n"
        "14|PENDING|Priority|Unknown\n15|RUNNING|None|1796624723\n16|PENDING|Priority\n"
    )
    assert states["11"] == JobStatus(JobState.PENDING, "Resources", 1796628000.0)
    assert [states[j].start_at for j in ("12", "13", "14", "15", "16")] == [None] * 5
    assert states["16"].reason == "Priority"  # the three-field format still reads


def test_parse_squeue_and_sacct() -> None:
    states = parse_squeue("11|PENDING|Resources\n12|RUNNING|None\n13|COMPLETING|(null)\n")
    assert states["11"].state is JobState.PENDING and states["11"].reason == "Resources"
    assert states["12"].state is JobState.RUNNING and states["12"].reason is None
    assert states["13"].state is JobState.COMPLETING
    done = parse_sacct("14|COMPLETED|0:0\n15|CANCELLED by 1000|0:15\n16|OUT_OF_MEMORY|0:125\n")
    assert done["14"].state is JobState.COMPLETED
    assert done["15"].state is JobState.CANCELLED
    assert done["16"].state is JobState.OUT_OF_MEMORY


def untar(data: str | bytes | None) -> dict[str, bytes]:
    assert isinstance(data, bytes)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def request_for(run_id: str = "abc", **changes: object) -> JobRequest:
    fields: dict[str, object] = {"attempt": 1, "maybe_submitted": False} | changes
    return JobRequest(
        run_id,
        SITE,
        SITE.partitions[0],
        TASK,
        "def custom_kernel(x): return x\n",
        {"run_id": run_id},
        "aa" * 32,
        attempt=int(fields["attempt"]),  # type: ignore[call-overload]
        maybe_submitted=bool(fields["maybe_submitted"]),
    )


def sbatch_ok(argv: list[str], stdin: str | bytes | None) -> tuple[int, str, str]:
    return (0, "77;gamma\n", "") if argv[0] == "sh" else (0, "", "")


async def test_submit_is_one_command_with_the_bundle_as_a_tar() -> None:
    transport = FakeTransport(sbatch_ok)
    [job] = await backend(transport).submit([request_for()])
    assert job.job_id == "77"
    assert str(job.bundle.root) == "/home/gwrun/runs/abc"
    assert transport.calls == [
        ["mkdir", "-p", "--", "/home/gwrun/runs"],
        ["sh", "-c", SUBMIT_SCRIPT, "gw-submit", "/home/gwrun/runs", "abc", "sbatch"],
    ]
    files = untar(transport.stdin[1])
    expected = {"job.sh", "spec.json", "key", "output.log", "task/submission.py", "harness/__init__.py"}
    assert {f"abc/{name}" for name in expected} <= set(files)
    script = files["abc/job.sh"].decode()
    assert f"#SBATCH --job-name={job_name('abc')}" in script
    assert "#SBATCH --gres=gpu:h100:1" in script
    assert files["abc/key"].decode().strip() == "aa" * 32


async def test_the_submit_script_unpacks_and_submits_with_the_sites_sbatch(tmp_path: Path) -> None:
    """Run SUBMIT_SCRIPT for real with a stand-in sbatch: the bundle lands with a private key file."""
    fake_sbatch = tmp_path / "sbatch"
    fake_sbatch.write_text('#!/bin/sh\necho "42;c"; pwd > submitted-from\n')
    fake_sbatch.chmod(0o755)
    transport = FakeTransport(sbatch_ok)
    await backend(transport).submit([request_for()])
    workdir = tmp_path / "runs" / "a b$(touch pwned)"
    workdir.mkdir(parents=True)
    done = subprocess.run(
        ["sh", "-c", SUBMIT_SCRIPT, "gw-submit", str(workdir), "abc", str(fake_sbatch)],
        input=transport.stdin[-1],
        capture_output=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"42;c\n"
    bundle = workdir / "abc"
    assert (tmp_path / "submitted-from").read_text().strip() == str(tmp_path)
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o700
    assert stat.S_IMODE((bundle / "key").stat().st_mode) == 0o600
    assert (bundle / "output.log").read_bytes() == b""
    assert not (tmp_path / "pwned").exists()


async def test_a_submit_cut_off_is_looked_up_by_name_before_submitting_again() -> None:
    def answer(argv: list[str], stdin: str | bytes | None) -> tuple[int, str, str]:
        if argv[0] == "squeue":
            assert argv[argv.index("--name") + 1] == job_name("abc")
            return 0, f"88|{job_name('abc')}|PENDING\n", ""
        if argv[0] == "mkdir":
            return 0, "", ""
        raise AssertionError(f"must not run {argv}")

    transport = FakeTransport(answer)
    transport.fail_next = {"sh": [TransportError("lost the connection during sh")]}
    [job] = await backend(transport).submit([request_for()])
    assert job.job_id == "88"
    assert [c[0] for c in transport.calls] == ["mkdir", "sh", "squeue"]


async def test_a_submit_cut_off_before_slurm_saw_it_is_submitted_once_more() -> None:
    def answer(argv: list[str], stdin: str | bytes | None) -> tuple[int, str, str]:
        if argv[0] == "squeue":
            return 0, "", ""
        if argv[0] == "sacct":
            assert "-S" in argv and argv[argv.index("--name") + 1] == job_name("abc")
            return 0, "", ""
        return sbatch_ok(argv, stdin)

    transport = FakeTransport(answer)
    transport.fail_next = {"sh": [CommandError(["sh"], None, "", "", timed_out=True)]}
    [job] = await backend(transport).submit([request_for()])
    assert job.job_id == "77"
    assert [c[0] for c in transport.calls] == ["mkdir", "sh", "squeue", "sacct", "sh"]
    assert transport.calls[-1][2] == RESUBMIT_SCRIPT  # the first try may have unpacked its folder


async def test_a_run_that_may_be_submitted_is_adopted_not_submitted_twice() -> None:
    def answer(argv: list[str], stdin: str | bytes | None) -> tuple[int, str, str]:
        if argv[0] == "squeue":
            return 0, "", ""
        if argv[0] == "sacct":  # two jobs of that name (an older bug): the newest is followed
            name = job_name("abc", 2)
            return 0, f"90|{name}|FAILED\n91|{name}|COMPLETED\n", ""
        if argv[0] == "mkdir":
            return 0, "", ""
        raise AssertionError(f"must not run {argv}")

    transport = FakeTransport(answer)
    [job] = await backend(transport).submit([request_for(attempt=2, maybe_submitted=True)])
    assert job.job_id == "91"


async def test_without_accounting_a_lookup_refuses_rather_than_risk_a_duplicate() -> None:
    def answer(argv: list[str], stdin: str | bytes | None) -> tuple[int, str, str]:
        if argv[0] == "sacct":
            return 1, "", "sacct: error: accounting storage is disabled"
        return 0, "", ""

    with pytest.raises(BackendError, match="accounting storage is disabled"):
        await backend(FakeTransport(answer)).find([request_for()])


def test_partition_load_from_sinfo_and_squeue() -> None:
    sinfo = "h100*|up|idle\nh100*|up|drain\ndebug|down|idle\nl4|up|drain*\n"
    squeue = "h100|PENDING\nh100|RUNNING\nh100,debug|PENDING\n"
    load = parse_load(sinfo, squeue, ["h100", "debug", "l4", "gone"])
    assert (load["h100"].available, load["h100"].pending, load["h100"].running) == (True, 2, 1)
    assert not load["debug"].available and load["debug"].pending == 1
    assert not load["l4"].available and not load["gone"].available
    assert load["gone"].state == "missing"


def test_slurm_binaries_can_be_overridden_per_site() -> None:
    site = SITE.model_copy(
        update={"slurm": SlurmCommands(bin_dir="/opt/slurm/bin", sacct="/usr/local/bin/sacct")}
    )
    assert site.slurm.argv0("sbatch") == "/opt/slurm/bin/sbatch"
    assert site.slurm.argv0("sacct") == "/usr/local/bin/sacct"


def status_query(argv: list[str]) -> bool:
    """The status round's squeue: run under env, so its times are epoch seconds."""
    return argv[:3] == ["env", "SLURM_TIME_FORMAT=%s", "squeue"]


async def test_one_squeue_for_many_jobs_then_sacct_only_for_the_missing() -> None:
    def answer(argv: list[str], stdin: str | bytes | None) -> tuple[int, str, str]:
        if status_query(argv):
            return 0, "1|RUNNING|None|1796624723\n2|PENDING|Priority|1796628000\n", ""
        if argv[0] == "sacct":
            assert argv[argv.index("-j") + 1] == "3"
            return 0, "3|COMPLETED|0:0\n", ""
        raise AssertionError(argv)

    transport = FakeTransport(answer)
    slurm = backend(transport)
    states = await slurm.status([handle("1"), handle("2"), handle("3")])
    assert [c[0] for c in transport.calls] == ["env", "sacct"]
    assert transport.calls[0][transport.calls[0].index("-j") + 1] == "1,2,3"
    assert states["1"].state is JobState.RUNNING
    assert states["1"].start_at is None  # a running job's start is history, not an estimate
    assert states["2"].reason == "Priority"
    assert states["2"].start_at == 1796628000.0
    assert states["3"].state is JobState.COMPLETED


async def test_terminal_states_are_cached_and_never_asked_again() -> None:
    transport = FakeTransport(
        lambda argv, stdin: (0, "5|COMPLETED|None|0\n", "") if status_query(argv) else (1, "", "")
    )
    slurm = backend(transport)
    await slurm.status([handle("5")])
    again = await slurm.status([handle("5")])
    assert again["5"].state is JobState.COMPLETED
    assert len(transport.calls) == 1


async def test_a_job_gone_from_squeue_and_sacct_is_unknown_not_done() -> None:
    def answer(argv: list[str], stdin: str | bytes | None) -> tuple[int, str, str]:
        if status_query(argv):
            return 1, "", "slurm_load_jobs error: Invalid job id specified\n"
        return 0, "", ""

    states = await backend(FakeTransport(answer)).status([handle("9")])
    assert states["9"].state is JobState.UNKNOWN


async def test_sbatch_refusal_is_a_backend_error_with_slurms_message() -> None:
    def answer(argv: list[str], stdin: str | bytes | None) -> tuple[int, str, str]:
        if argv[0] == "sh":
            return 1, "", "sbatch: error: invalid partition specified: h100\n"
        return 0, "", ""

    transport = FakeTransport(answer)
    with pytest.raises(BackendError, match="invalid partition"):
        await backend(transport).submit([request_for()])
    assert [c[0] for c in transport.calls] == ["mkdir", "sh"]  # a refusal is final: no lookup, no retry
