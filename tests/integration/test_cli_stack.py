"""The CLI against the dev stack, as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import PROBLEMS

pytestmark = pytest.mark.integration
GATEWAY = str(Path(sys.executable).parent / "gateway")


def cli(dev_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | dev_env | {"COLUMNS": "200"}
    return subprocess.run([GATEWAY, *args], capture_output=True, text=True, env=env, timeout=180)


def test_submit_to_beta_then_leaderboard_show_ranks_it(dev_env: dict[str, str]) -> None:
    board = f"cli-{uuid.uuid4().hex[:8]}"
    created = cli(dev_env, "leaderboard", "create", board, "--task", str(PROBLEMS / "softmax"), "--gpu", "L4")
    assert created.returncode == 0, created.stdout + created.stderr
    done = cli(
        dev_env,
        "submit",
        str(PROBLEMS / "softmax/solutions/correct.py"),
        "--leaderboard",
        board,
        "--site",
        "beta",
        "--gpu",
        "L4",
        "--user",
        "carol",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "beta/l4 (L4)" in done.stdout and "passed" in done.stdout
    shown = cli(dev_env, "leaderboard", "show", board)
    assert shown.returncode == 0
    row = next(line for line in shown.stdout.splitlines() if "carol" in line)
    assert "L4" in row and "correct.py" in row and "beta" in row
    refused = cli(
        dev_env,
        "submit",
        str(PROBLEMS / "softmax/solutions/correct.py"),
        "--leaderboard",
        board,
        "--site",
        "beta",
        "--gpu",
        "A100",
    )
    assert refused.returncode == 2 and "does not rank 'A100'" in refused.stdout


def test_sites_validate_names_file_line_and_field(dev_env: dict[str, str], tmp_path: Path) -> None:
    good = Path(dev_env["GATEWAY_SITES_DIR"]) / "alpha.yaml"
    assert cli(dev_env, "sites", "validate").returncode == 0
    (tmp_path / "broken.yaml").write_text(good.read_text().replace("port: 42201", "port: [42201]"))
    done = cli(dev_env, "sites", "validate", str(tmp_path))
    assert done.returncode == 1
    assert f"{tmp_path / 'broken.yaml'}:5: login.port" in done.stdout


RAISES = """import torch
from task import input_t, output_t


def custom_kernel(data: input_t) -> output_t:
    a, b = data
    raise ValueError("mine exploded")
"""


def test_a_kernel_that_raises_on_alpha_is_reported_with_the_users_file_and_line(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    mine = tmp_path / "mine.py"
    mine.write_text(RAISES)
    task = str(PROBLEMS / "vectoradd")
    # through the queue (a worker runs the stored run) and in this process without the database
    for extra in ([], ["--no-db"]):
        done = cli(dev_env, "submit", str(mine), "--task", task, "--site", "alpha", "--mode", "test", *extra)
        assert done.returncode == 1, done.stdout + done.stderr
        error = 'ValueError: mine exploded | mine.py:7 in custom_kernel: raise ValueError("mine exploded")'
        assert error in done.stdout
        assert "submission.py" not in done.stdout and "/task/" not in done.stdout
