"""A new site added as one YAML file and nothing else: `gamma` reaches cluster beta through its sshd,
offers only the L4 partition, and charges Slurm account `research` with QOS `short` (which the dev stack
creates and associates with gwrun). It validates, passes `sites check`, runs a submission, and sacct on
the cluster shows the job charged as the YAML says."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.settings import Settings
from gateway.config.sites import load_site
from gateway.config.tasks import load_task
from gateway.core.states import JobState
from gateway.devstack.accounts import ACCOUNT, QOS, ensure_accounts
from gateway.devstack.paths import Paths
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import Gateway
from gateway.service.model import SubmitRequest
from tests.conftest import PROBLEMS, solution
from tests.integration.accounting import finished_jobs
from tests.integration.site_files import write_site
from tests.integration.test_site_check import cli

pytestmark = pytest.mark.integration


def gamma_yaml(dev_dir: Path) -> str:
    return f"""\
name: gamma
title: "Cluster beta as a new site: its L4 partition only, charged to {ACCOUNT}/{QOS}"
login:
  host: 127.0.0.1
  port: 42202
  user: gwrun
  identity_file: {dev_dir / "ssh" / "id_ed25519"}
  known_hosts: {dev_dir / "ssh" / "known_hosts"}
workdir: gamma-runs
account: {ACCOUNT}
qos: {QOS}
setup:
  - source "$HOME/venv/bin/activate"
  - export GW_SITE_MARK=gamma
  - 'echo "site mark: $GW_SITE_MARK"'  # quoted: YAML reads an unquoted ": " as a mapping
partitions:
  - name: l4
    gpu_type: L4
    gres: "gpu:l4:1"
    time_limit: "00:10:00"
    cpus_per_gpu: 1
    mem_per_gpu: 1G
"""


async def test_a_site_added_as_yaml_alone_validates_checks_and_runs(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    dev_dir = Path(dev_env["GATEWAY_DEV_DIR"])
    ensure_accounts(Paths(dev_dir))  # what `gateway dev up` does; the stack may predate it
    sites = tmp_path / "sites"
    path = write_site(sites, "gamma", gamma_yaml(dev_dir))
    env = dev_env | {"GATEWAY_SITES_DIR": str(sites)}

    validated = cli(env, "sites", "validate")
    assert validated.returncode == 0 and "ok gamma" in validated.stdout, validated.stdout

    checked = cli(env, "sites", "check", "gamma")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"gwrun may use account {ACCOUNT}, qos {QOS} on cluster beta" in checked.stdout
    assert "PASS  probe job (L4)" in checked.stdout

    settings = Settings(sites_dir=sites, local_workdir=tmp_path / "runs")
    gateway = await Gateway.open(settings, use_database=False)
    try:
        report = await gateway.submit(
            SubmitRequest(
                code=solution("vectoradd", "correct.py"),
                file_name="correct.py",
                user="gamma-tester",
                task=load_task(PROBLEMS / "vectoradd"),
                site="gamma",
                gpu_type="L4",
                mode="test",
                admin=True,
            )
        )
    finally:
        await gateway.close()
    assert report.passed, report.error
    assert (report.site, report.partition, report.state) == ("gamma", "l4", JobState.COMPLETED)
    assert "site mark: gamma" in report.output_tail  # the admin's setup lines ran on the node

    site = load_site(path)
    assert site.login is not None
    ssh = SSHTransport("gamma", site.login)
    try:
        # by the first field: on a fresh cluster "4|" is also in every line of partition "l4"
        charged = await finished_jobs(
            ssh, ["JobIDRaw", "Cluster", "Partition", "Account", "QOS"], str(report.job_id), first_field=True
        )
    finally:
        await ssh.close()
    assert charged == [[str(report.job_id), "beta", "l4", ACCOUNT, QOS, "COMPLETED"]]
