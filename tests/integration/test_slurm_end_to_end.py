"""End to end through the real dev stack: Slurm over SSH, the harness, PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from gateway.config.sites import load_sites
from gateway.config.tasks import load_task
from gateway.core.errors import TransportError, UserError
from gateway.core.states import JobState
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import OPERATOR, Gateway
from gateway.service.model import SubmitRequest
from tests.conftest import PROBLEMS, solution
from tests.integration.accounting import finished_jobs

pytestmark = pytest.mark.integration


def request(problem: str, sol: str, site: str, gpu: str, board: str, user: str = "tester") -> SubmitRequest:
    return SubmitRequest(
        code=solution(problem, sol),
        file_name=sol,
        user=user,
        task=load_task(PROBLEMS / problem),
        leaderboard=board,
        site=site,
        gpu_type=gpu,
        mode="leaderboard",
        admin=True,
    )


async def test_alpha_run_is_one_slurm_job_named_by_run_id_and_its_row_holds_timings(
    gateway: Gateway, dev_env: dict[str, str]
) -> None:
    board = f"it-{uuid.uuid4().hex[:8]}"
    report = await gateway.submit(request("vectoradd", "correct.py", "alpha", "H100", board))
    assert report.passed, report.error
    assert report.state is JobState.COMPLETED and report.partition == "h100"

    # sacct on alpha, over its own sshd: exactly one job carries this run id
    site = gateway.sites.configured["alpha"]
    assert site.login is not None
    # the result is pushed as the runner writes it, so Slurm may not have recorded the end yet
    assert report.pushed
    ssh = SSHTransport("alpha", site.login)
    try:
        mine = await finished_jobs(ssh, ["JobIDRaw", "JobName", "Cluster"], report.run_id)
    finally:
        await ssh.close()
    assert len(mine) == 1
    assert mine[0] == [report.job_id, f"gw-{report.run_id}", "alpha", "COMPLETED"]

    assert gateway.store is not None
    row = await gateway.store.get_run(report.run_id)
    assert row is not None and row.passed and row.state == "COMPLETED" and row.site == "alpha"
    assert row.score is not None and row.score == pytest.approx(report.score)
    phases = {p["name"]: p for p in row.result["phases"]} if row.result else {}
    assert int(phases["leaderboard"]["kv"]["benchmark-count"]) >= 1
    assert float(phases["leaderboard"]["kv"]["benchmark.0.mean"]) > 0


async def test_leaderboard_ranks_fast_before_slow_and_reports_the_wrong_one(gateway: Gateway) -> None:

    board = f"it-{uuid.uuid4().hex[:8]}"
    reports = await asyncio.gather(
        gateway.submit(request("softmax", "slow.py", "beta", "A100", board, "bob")),
        gateway.submit(request("softmax", "correct.py", "beta", "A100", board, "ada")),
        gateway.submit(request("softmax", "wrong.py", "beta", "A100", board, "eve")),
    )
    slow, correct, wrong = reports
    backend = gateway.sites.backend_for("beta")
    assert isinstance(backend, SlurmBackend) and isinstance(backend.transport, SSHTransport)
    assert backend.transport.connects == 1  # three concurrent runs, one SSH connection
    assert correct.passed and slow.passed
    assert not wrong.passed and wrong.error and "mismatch" in wrong.error.lower()
    view = await gateway.boards.leaderboard(board, caller=OPERATOR)
    assert [(e.user_name, e.rank) for e in view.ranking["A100"]] == [("ada", 1), ("bob", 2)]
    assert [r.user_name for r in view.recent if r.passed is False] == ["eve"]


async def test_beta_routes_l4_to_its_own_partition(gateway: Gateway) -> None:
    report = await gateway.submit(
        request("vectoradd", "correct.py", "beta", "L4", f"it-{uuid.uuid4().hex[:8]}")
    )
    assert report.passed, report.error
    assert (report.site, report.partition, report.gpu_type) == ("beta", "l4", "L4")


async def test_a_gpu_type_the_site_lacks_is_a_user_error(gateway: Gateway) -> None:
    with pytest.raises(UserError, match="offers: H100"):
        await gateway.submit(request("vectoradd", "correct.py", "alpha", "MI300X", "it-none"))


async def test_a_wrong_pinned_host_key_refuses_to_connect(dev_env: dict[str, str], tmp_path: Path) -> None:
    site = load_sites(Path(dev_env["GATEWAY_SITES_DIR"]))["alpha"]
    assert site.login is not None
    beta_key = next(
        line.split(" ", 1)[1]
        for line in site.login.known_hosts.read_text().splitlines()
        if line.startswith("[127.0.0.1]:42202")
    )
    fake = tmp_path / "known_hosts"
    fake.write_text(f"[127.0.0.1]:42201 {beta_key}\n")  # beta's key claimed for alpha's port
    ssh = SSHTransport("alpha", site.login.model_copy(update={"known_hosts": fake}))
    with pytest.raises(TransportError, match="host key"):
        await ssh.run(["true"])
