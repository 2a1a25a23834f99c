"""`gateway sites check` against the running dev stack: alpha passes every step; broken copies of it
fail at the step that is broken, saying what to fix."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from gateway.config.settings import Settings
from gateway.service.facade import probe_gateway
from gateway.sitecheck import SiteCheck
from tests.integration.site_files import dev_site_text, write_site

pytestmark = pytest.mark.integration
GATEWAY = str(Path(sys.executable).parent / "gateway")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = os.environ | env | {"COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run([GATEWAY, *args], capture_output=True, text=True, env=full, timeout=300)


def test_alpha_passes_every_step_including_a_probe_job(dev_env: dict[str, str]) -> None:
    done = cli(dev_env, "sites", "check", "alpha")
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = {line.split()[0] for line in done.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")}
    assert statuses == {"PASS", "SKIP"}
    lines = done.stdout.splitlines()
    for title in (
        "site YAML",
        "host key pinned",
        "connect + auth",
        "slurm commands",
        "partition h100",
        "partition debug",
        "workdir writable",
        "probe job (H100)",
        "isolation of submitted code",
    ):
        assert any(line.startswith("PASS") and title in line for line in lines), title
    assert "neither account nor qos is set" in done.stdout  # the one skip: alpha charges no account
    assert "slurm-wlm 22.05" in done.stdout and "torch" in done.stdout


def test_a_changed_host_key_is_refused_and_said_so(dev_env: dict[str, str], tmp_path: Path) -> None:
    dev_dir = Path(dev_env["GATEWAY_DEV_DIR"])
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:42201 {impostor}\n")
    text = dev_site_text("alpha", dev_dir).replace(f"{dev_dir / 'ssh' / 'known_hosts'}", str(known_hosts))
    write_site(tmp_path / "sites", "alpha", text)
    done = cli(dev_env | {"GATEWAY_SITES_DIR": str(tmp_path / "sites")}, "sites", "check", "alpha")
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    connect = next(line for line in lines if "connect + auth" in line)
    assert connect.startswith("FAIL") and "does not match" in connect and str(known_hosts) in connect
    fix = lines[lines.index(connect) + 1]
    assert "fix:" in fix and "man-in-the-middle" in fix and "ssh-keygen -R '[127.0.0.1]:42201'" in fix
    skipped = [line for line in lines if line.startswith("SKIP")]
    assert any("slurm commands" in line and "needs connect + auth" in line for line in skipped)
    assert any("probe job (H100)" in line for line in skipped)


async def test_a_partition_the_cluster_lacks_fails_by_name(dev_env: dict[str, str], tmp_path: Path) -> None:
    dev_dir = Path(dev_env["GATEWAY_DEV_DIR"])
    text = dev_site_text("alpha", dev_dir) + (
        '  - name: nosuch\n    gpu_type: B200\n    gres: "gpu:b200:1"\n'
    )
    write_site(tmp_path, "alpha", text)
    settings = Settings(sites_dir=tmp_path)
    site_check = SiteCheck(
        settings, "alpha", probe_timeout_s=120, open_gateway=functools.partial(probe_gateway, settings)
    )
    steps = {step.key: step async for step in site_check.steps()}
    failed = [step for step in steps.values() if step.status == "FAIL"]
    assert [step.key for step in failed] == ["partition:nosuch"], failed
    assert (
        "partition 'nosuch' does not exist on the cluster (its partitions: debug, h100)" in failed[0].detail
    )
    assert "partitions[2].name" in failed[0].fix
    assert steps["probe:H100"].status == "PASS"  # its partitions are fine
    assert steps["probe:B200"].status == "SKIP" and "partition nosuch" in steps["probe:B200"].detail
    assert not site_check.passed
