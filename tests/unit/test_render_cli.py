"""`gateway render` prints a site's job script for a task without submitting anything."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli.main import app
from tests.conftest import PROBLEMS

SITE = """\
name: gamma
login: {host: login.example.org, user: gwrun, identity_file: id, known_hosts: known_hosts}
workdir: /scratch/gateway
account: research
qos: short
setup:
  - module load cuda/12.4
partitions:
  - {name: a100, gpu_type: A100, gres: "gpu:a100:1"}
  - name: l4
    gpu_type: L4
    gres: "gpu:l4:1"
    time_limit: "00:05:00"
    directives: ["--constraint=l4_24g", "--exclusive"]
"""


def render(tmp_path: Path, *args: str) -> str:
    (tmp_path / "gamma.yaml").write_text(SITE)
    env = {"GATEWAY_SITES_DIR": str(tmp_path)}
    done = CliRunner().invoke(
        app, ["render", "--site", "gamma", "--task", str(PROBLEMS / "vectoradd"), *args], env=env
    )
    assert done.exit_code == 0, done.output
    return done.stdout


def test_render_shows_the_sites_directives_and_is_byte_identical(tmp_path: Path) -> None:
    first = render(tmp_path, "--gpu", "L4", "--mode", "benchmark")
    for line in (
        "#SBATCH --partition=l4",
        "#SBATCH --account=research",
        "#SBATCH --qos=short",
        "#SBATCH --gres=gpu:l4:1",
        "#SBATCH --time=00:05:00",
        "#SBATCH --constraint=l4_24g",
        "#SBATCH --exclusive",
        "module load cuda/12.4",
        "#SBATCH --chdir=/scratch/gateway/00000000-0000-0000-0000-000000000000",
    ):
        assert line in first.splitlines(), line
    assert render(tmp_path, "--gpu", "L4", "--mode", "benchmark") == first


def test_render_by_partition_name(tmp_path: Path) -> None:
    assert "#SBATCH --partition=a100" in render(tmp_path, "--partition", "a100").splitlines()


def test_render_refuses_a_partition_the_site_does_not_have(tmp_path: Path) -> None:
    (tmp_path / "gamma.yaml").write_text(SITE)
    done = CliRunner().invoke(
        app,
        ["render", "--site", "gamma", "--partition", "h100", "--task", str(PROBLEMS / "vectoradd")],
        env={"GATEWAY_SITES_DIR": str(tmp_path), "COLUMNS": "200"},
    )
    assert done.exit_code == 2
    assert "site gamma has no partition 'h100'; it has: a100, l4" in done.output
