"""Multi-GPU tasks on the dev stack: a 2-rank all-reduce (gloo on the fake GPUs) runs through Slurm as one
job holding 2 GPUs of alpha's h100 node, both ranks are checked and the run ranks; a task of 4 GPUs per
run is refused before it is stored, naming the partition that comes closest."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.tasks import load_task
from gateway.core.errors import UserError
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import OPERATOR, Gateway
from gateway.service.model import SubmitRequest
from tests.conftest import PROBLEMS, solution
from tests.integration.accounting import finished_jobs

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(stack_settings: Settings) -> AsyncIterator[Gateway]:
    """The dev stack with this checkout's site files (alpha's h100 nodes give a job 2 GPUs)."""
    settings = stack_settings.model_copy(update={"sites_dir": REPO_ROOT / "site_configs"})
    gw = await Gateway.open(settings)
    yield gw
    await gw.close()


def allreduce(board: str, **changes: object) -> SubmitRequest:
    task = load_task(PROBLEMS / "allreduce_sum")
    return SubmitRequest(
        code=solution("allreduce_sum", "correct.py"),
        file_name="correct.py",
        user="ranks",
        task=task.model_copy(update=changes) if changes else task,
        leaderboard=board,
        gpu_type="H100",
        mode="leaderboard",
        admin=True,
    )


async def test_two_ranks_run_as_one_job_of_two_gpus_and_rank(gateway: Gateway) -> None:
    board = f"it-{uuid.uuid4().hex[:8]}"
    report = await gateway.submit(allreduce(board))
    assert report.passed, report.error or report.output_tail
    assert (report.site, report.partition) == ("alpha", "h100")  # debug's nodes give a job 1 GPU
    assert report.result is not None
    assert all(phase.kv.get("ranks") == "2" for phase in report.result.phases)
    assert report.result.system["gpus_visible"] == "0,1"

    site = gateway.sites.configured["alpha"]
    assert site.login is not None
    ssh = SSHTransport("alpha", site.login)
    try:
        jobs = await finished_jobs(ssh, ["JobIDRaw", "AllocTRES"], str(report.job_id), first_field=True)
    finally:
        await ssh.close()
    assert len(jobs) == 1 and "gres/gpu=2" in jobs[0][1] and "cpu=2" in jobs[0][1], jobs

    view = await gateway.boards.leaderboard(board, caller=OPERATOR)
    assert [entry.run_id for entry in view.ranking["H100"]] == [report.run_id]


async def test_a_task_of_four_gpus_per_run_is_refused_saying_why(gateway: Gateway) -> None:
    with pytest.raises(UserError) as refused:
        await gateway.enqueue(allreduce(f"it-{uuid.uuid4().hex[:8]}", gpus_per_run=4))
    assert "needs 4 GPUs per run" in str(refused.value)
    assert "the largest H100 partition offers 2 per node (alpha/h100)" in str(refused.value)
