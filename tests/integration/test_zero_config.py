"""Zero-config on a login node, for real: as the dev stack's job user, with alpha's Slurm configuration, no
site file and no database, `gateway submit --gpu H100` runs through alpha's own sbatch (sacct shows the
job), and `gateway sites init` writes a site file that validates and passes `gateway sites check`.

The CLI runs as the job user in a clean environment, with the job user's venv (python with torch, as a
researcher's would be) and the gateway's code and dependencies on its PYTHONPATH."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from gateway.config.settings import REPO_ROOT
from gateway.core.states import parse_slurm_state
from gateway.devstack.paths import RUN_USER, Paths

pytestmark = pytest.mark.integration
PROBLEMS = REPO_ROOT / "problems"


class LoginNode:
    """A folder of the job user's, and the gateway CLI run there as that user."""

    def __init__(self, paths: Paths, folder: Path) -> None:
        self.paths = paths
        self.folder = folder
        self.slurm_conf = str(paths.slurm_conf("alpha"))
        self.sites = folder / "sites"

    def env(self, **changes: str) -> dict[str, str]:
        # the gateway's own dependencies, for the job venv's python (its minor version is checked below)
        dependencies = str(Path(pydantic.__file__).resolve().parent.parent)
        return {
            "HOME": str(self.paths.home),
            "USER": RUN_USER,
            "LOGNAME": RUN_USER,
            "PATH": f"{self.paths.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "SLURM_CONF": self.slurm_conf,
            "GATEWAY_SITES_DIR": str(self.sites),
            "GATEWAY_DEV_DIR": str(self.folder / "no-dev-stack"),  # so no database URL either
            "PYTHONPATH": f"{REPO_ROOT}:{dependencies}",
            "COLUMNS": "200",
            "NO_COLOR": "1",
        } | changes

    def gateway(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        python = str(self.paths.venv / "bin" / "python")
        return subprocess.run(
            [python, "-m", "gateway.cli.main", *args],
            capture_output=True,
            text=True,
            env=self.env(**env),
            cwd=self.folder,
            user=RUN_USER,
            timeout=300,
        )


@pytest.fixture
def login_node(dev_env: dict[str, str]) -> Iterator[LoginNode]:
    assert os.geteuid() == 0, "these tests run the CLI as the dev stack's job user: run them as root"
    paths = Paths(Path(dev_env["GATEWAY_DEV_DIR"]))
    venv_python = paths.venv / "bin" / "python"
    version = subprocess.run(
        [venv_python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == str(sys.version_info[:2]), (
        f"the job venv's python is {version}; the gateway's dependencies here are for {sys.version_info[:2]}"
    )
    folder = Path(tempfile.mkdtemp(prefix="gw-zero-config-"))
    shutil.chown(folder, RUN_USER, RUN_USER)
    try:
        yield LoginNode(paths, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def accounted(node: LoginNode, job_id: str, timeout_s: float = 20.0) -> list[str]:
    """sacct's line for the job on alpha (JobID, User, Partition, State) once it ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,User,Partition,State"],
            capture_output=True,
            text=True,
            env={**os.environ, "SLURM_CONF": node.slurm_conf},
            timeout=30,
        )
        rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith(f"{job_id}|")]
        # slurmdbd may record a short job's end before its start (the partition comes with the start)
        if (rows and parse_slurm_state(rows[0][3]).is_terminal and rows[0][2]) or time.monotonic() > deadline:
            assert rows, f"sacct has no job {job_id}: {done.stdout}{done.stderr}"
            return rows[0]
        time.sleep(0.2)


def test_submit_with_a_gpu_and_no_site_runs_through_the_local_sbatch(login_node: LoginNode) -> None:
    done = login_node.gateway(
        "submit",
        str(PROBLEMS / "vectoradd/solutions/correct.py"),
        "--task",
        str(PROBLEMS / "vectoradd"),
        "--gpu",
        "H100",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "routed to alpha/" in output and "passed" in output
    job = re.search(r"on alpha/(\w+) \(H100\), job (\d+)", output)
    assert job is not None, output
    assert accounted(login_node, job.group(2)) == [job.group(2), RUN_USER, job.group(1), "COMPLETED"]
    assert not login_node.sites.exists()  # zero-config writes nothing


def test_the_discovered_cluster_can_be_named_like_a_site(login_node: LoginNode) -> None:
    done = login_node.gateway(
        "submit",
        str(PROBLEMS / "vectoradd/solutions/correct.py"),
        "--task",
        str(PROBLEMS / "vectoradd"),
        "--site",
        "alpha",
        "--mode",
        "test",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    job = re.search(r"on alpha/(\w+) \(H100\), job (\d+)", done.stdout)
    assert job is not None, done.stdout
    assert accounted(login_node, job.group(2))[1:] == [RUN_USER, job.group(1), "COMPLETED"]


def test_this_machine_stays_available_by_name(login_node: LoginNode) -> None:
    done = login_node.gateway(
        "submit",
        str(PROBLEMS / "vectoradd/solutions/correct.py"),
        "--task",
        str(PROBLEMS / "vectoradd"),
        "--site",
        "local",
        "--mode",
        "test",
        GATEWAY_LOCAL_ISOLATION="none",
        GATEWAY_LOCAL_WORKDIR=str(login_node.folder / "runs"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "local/local" in done.stdout and "job" not in done.stdout.split("local/local")[1].split("\n")[0]


def test_a_gpu_alpha_lacks_and_a_broken_slurm_say_what_to_do(login_node: LoginNode) -> None:
    args = ("submit", str(PROBLEMS / "vectoradd/solutions/correct.py"), "--task", str(PROBLEMS / "vectoradd"))
    lacking = login_node.gateway(*args, "--gpu", "A100")
    assert lacking.returncode == 2, lacking.stdout + lacking.stderr
    assert (
        "cluster alpha (found with sinfo) has no partition with GPU type 'A100'; offered: H100"
        in lacking.stdout
    )
    started = time.monotonic()
    broken = login_node.gateway(*args, "--gpu", "H100", SLURM_CONF=str(login_node.folder / "slurm.conf"))
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert "sinfo failed: SLURM_CONF names" in broken.stdout and "--site local" in broken.stdout
    assert time.monotonic() - started < 10


def test_sites_init_writes_a_site_file_that_validates_and_passes_the_check(login_node: LoginNode) -> None:
    done = login_node.gateway("sites", "init")
    assert done.returncode == 0, done.stdout + done.stderr
    written = login_node.sites / "alpha.yaml"
    assert f"wrote {written}" in done.stdout and "gateway sites check alpha" in done.stdout
    assert written.stat().st_uid == pwd.getpwnam(RUN_USER).pw_uid  # written as the user, for the user
    text = written.read_text()
    assert "submit_via: local" in text and "account: research" in text
    assert f"python: {login_node.paths.venv / 'bin' / 'python'}" in text  # the researcher's venv, with torch

    again = login_node.gateway("sites", "init")
    assert again.returncode == 1 and "exists" in again.stdout and "--force" in again.stdout
    assert login_node.gateway("sites", "init", "--force").returncode == 0
    other = login_node.folder / "elsewhere" / "mine.yaml"
    assert login_node.gateway("sites", "init", "--output", str(other)).returncode == 0 and other.is_file()

    validated = login_node.gateway("sites", "validate")
    assert validated.returncode == 0 and "ok alpha" in validated.stdout, validated.stdout + validated.stderr
    checked = login_node.gateway("sites", "check", "alpha")
    lines = checked.stdout.splitlines()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for title in ("site YAML", "slurm commands", "partition h100", "partition debug", "account + qos"):
        assert any(line.startswith("PASS") and title in line for line in lines), title
    for title in ("workdir writable", "probe job (H100)", "isolation of submitted code"):
        assert any(line.startswith("PASS") and title in line for line in lines), title
