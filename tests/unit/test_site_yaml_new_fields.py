"""`gateway sites validate` names file, line and field for the site YAML's newer fields."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.config.sites import load_site

SITE = """\
name: gamma
login:
  host: login.example.org
  user: alice
  identity_file: keys/id
  known_hosts: keys/known_hosts
  jump_host:
    host: bastion.example.org
    user: "Bob Smith"
workdir: runs
account: research
qos: "short;rm"
slurm:
  bin_dir: opt/slurm/bin
requeue:
  "on": [NODE_FAIL, EXPLODED]
partitions:
  - name: l4
    gpu_type: L4
    gres: "gpu:l4:1"
    directives:
      - "--constraint=l4"
      - "--comment=$(touch /tmp/x)"
"""

CHANNELS = """\
name: delta
login:
  host: login.example.org
  user: alice
  identity_file: keys/id
  known_hosts: keys/known_hosts
  max_channels: 8
  tail_channels: 7
workdir: runs
partitions:
  - name: l4
"""


def validate(folder: Path) -> list[str]:
    done = CliRunner().invoke(app, ["sites", "validate", str(folder)], env={"COLUMNS": "300"})
    assert done.exit_code == 1, done.output
    return done.output.splitlines()


def line_for(lines: list[str], field: str) -> str:
    return next(line for line in lines if f": {field}: " in line)


def test_validate_names_file_line_and_field_of_every_new_field_error(tmp_path: Path) -> None:
    path = tmp_path / "gamma.yaml"
    path.write_text(SITE)
    lines = validate(tmp_path)
    assert line_for(lines, "login.jump_host.user").startswith(f"{path}:9: ")
    assert line_for(lines, "qos").startswith(f"{path}:12: ")
    assert line_for(lines, "slurm.bin_dir").startswith(f"{path}:14: ")
    assert line_for(lines, "requeue.on[1]").startswith(f"{path}:16: ")
    assert "'EXPLODED' is not allowed here: expected one of" in line_for(lines, "requeue.on[1]")
    directive = line_for(lines, "partitions[0].directives")
    assert directive.startswith(f"{path}:22: ")
    assert "'--comment=$(touch /tmp/x)' is not one sbatch option" in directive


def test_too_many_tail_channels_points_at_the_login_mapping(tmp_path: Path) -> None:
    # a rule across fields (the channel budget) points at the mapping it checks; pydantic runs it only
    # once the mapping's own fields are valid
    path = tmp_path / "delta.yaml"
    path.write_text(CHANNELS)
    lines = validate(tmp_path)
    assert line_for(lines, "login").startswith(f"{path}:3: ")
    assert "tail_channels must leave one channel for SFTP and one for commands" in line_for(lines, "login")


def test_validate_accepts_the_dev_sites() -> None:
    done = CliRunner().invoke(app, ["sites", "validate"])
    assert done.exit_code == 0, done.output
    assert "ok alpha" in done.output and "ok beta" in done.output


def test_requeue_on_can_be_written_without_quotes(tmp_path: Path) -> None:
    path = tmp_path / "epsilon.yaml"
    path.write_text(
        CHANNELS.replace("  tail_channels: 7\n", "").replace("delta", "epsilon")
        + "requeue:\n  on: [NODE_FAIL]\n"
    )
    assert load_site(path).requeue.on
