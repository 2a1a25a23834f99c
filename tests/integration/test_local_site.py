"""The embedded default: `gateway submit` with no site runs here with no Slurm, SSH or database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.tasks import load_task
from gateway.service.facade import Gateway
from gateway.service.model import SubmitRequest
from tests.conftest import PROBLEMS, solution

GATEWAY = str(Path(sys.executable).parent / "gateway")


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_SITES_DIR"] = str(tmp_path / "no-sites")  # not even the dev sites
    env["GATEWAY_LOCAL_WORKDIR"] = str(tmp_path / "runs")
    env["GATEWAY_DEV_DIR"] = str(tmp_path / "no-dev")
    return env


def gateway_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY, *args], capture_output=True, text=True, env=clean_env(tmp_path), cwd=tmp_path, timeout=120
    )


def test_cli_submit_without_a_site_passes_and_prints_timings(tmp_path: Path) -> None:
    done = gateway_cli(
        tmp_path,
        "submit",
        str(PROBLEMS / "vectoradd/solutions/correct.py"),
        "--task",
        str(PROBLEMS / "vectoradd"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout and "score" in done.stdout
    assert "benchmark" in done.stdout and "local/local" in done.stdout


def test_cli_submit_of_a_wrong_kernel_exits_1_with_the_harness_message(tmp_path: Path) -> None:
    done = gateway_cli(
        tmp_path,
        "submit",
        str(PROBLEMS / "softmax/solutions/wrong.py"),
        "--task",
        str(PROBLEMS / "softmax"),
        "--mode",
        "test",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "mismatch" in done.stdout.lower()


def test_cli_rejects_a_missing_task_with_a_clear_message(tmp_path: Path) -> None:
    done = gateway_cli(
        tmp_path, "submit", str(PROBLEMS / "vectoradd/solutions/correct.py"), "--task", str(tmp_path)
    )
    assert done.returncode == 2
    assert "no task.yml here" in done.stdout


async def test_service_local_run_verifies_the_signed_result(tmp_path: Path) -> None:
    settings = Settings(
        sites_dir=tmp_path, local_workdir=tmp_path / "runs", templates_dir=REPO_ROOT / "templates"
    )
    gateway = await Gateway.open(settings, use_database=False)
    try:
        report = await gateway.submit(
            SubmitRequest(
                code=solution("vectoradd", "correct.py"),
                file_name="correct.py",
                user="me",
                task=load_task(PROBLEMS / "vectoradd"),
                mode="benchmark",
                admin=True,
            )
        )
    finally:
        await gateway.close()
    assert report.passed, report.error
    assert report.result is not None and report.result.benchmarks and report.score
    assert not (tmp_path / "runs" / report.run_id / "key").exists()  # the runner deleted it


def test_cli_submit_of_a_kernel_that_raises_names_the_users_file_and_line(tmp_path: Path) -> None:
    mine = tmp_path / "my_kernel.py"
    mine.write_text("from task import input_t, output_t\n\ndef custom_kernel(data: input_t) -> output_t:\n"
                    "    return data[0] + data[1] + undefined\n")  # fmt: skip
    done = gateway_cli(tmp_path, "submit", str(mine), "--task", str(PROBLEMS / "vectoradd"), "--mode", "test")
    assert done.returncode == 1, done.stdout + done.stderr
    shown = " ".join(done.stdout.split())  # the table wraps long errors at the terminal's width
    assert "NameError: name 'undefined' is not defined | my_kernel.py:4 in custom_kernel" in shown
    for text in (done.stdout, shown):
        assert "submission.py" not in text and str(tmp_path / "runs") not in text
