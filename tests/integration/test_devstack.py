"""The dev stack itself: fake GPUs really schedule and queue, sacct answers, up is idempotent, and
arguments cross SSH as plain words."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.config.sites import load_sites
from gateway.devstack import DevStack
from gateway.running.transport.ssh import SSHTransport

pytestmark = pytest.mark.integration


def transport(dev_env: dict[str, str], site: str) -> SSHTransport:
    config = load_sites(Path(dev_env["GATEWAY_SITES_DIR"]))[site]
    assert config.login is not None
    return SSHTransport(site, config.login)


async def test_a_third_gpu_job_waits_for_resources_on_alpha(dev_env: dict[str, str]) -> None:
    ssh = transport(dev_env, "alpha")
    ids: list[str] = []
    try:
        for _ in range(3):
            done = await ssh.run(
                [
                    "sbatch",
                    "--parsable",
                    "--gres=gpu:h100:1",
                    "--chdir=/tmp",
                    "--output=/dev/null",
                    "--wrap",
                    "sleep 30",
                ]
            )
            ids.append(done.stdout.strip().split(";")[0])
        states: dict[str, tuple[str, str]] = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            out = await ssh.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r"])
            states = {i: (s, r) for i, s, r in (line.split("|") for line in out.stdout.splitlines())}
            # right after submission the reason may still read Priority until the scheduler looks
            if [states.get(i, ("", ""))[0] for i in ids] == ["RUNNING", "RUNNING", "PENDING"] and (
                states[ids[2]][1] == "Resources"
            ):
                break
            await asyncio.sleep(0.2)
        assert [states[i][0] for i in ids] == ["RUNNING", "RUNNING", "PENDING"]
        assert states[ids[2]][1] == "Resources"  # node alpha-n1 has two GPUs
        env = await ssh.run(["scontrol", "show", "job", ids[0]])
        assert "gres/gpu:h100=1" in env.stdout or "gpu:h100:1" in env.stdout
    finally:
        if ids:
            await ssh.run(["scancel", *ids], check=False)
        await ssh.close()


async def test_each_site_answers_with_its_own_cluster_and_sacct_works(dev_env: dict[str, str]) -> None:
    for site, partitions in (("alpha", {"h100", "debug"}), ("beta", {"a100", "l4"})):
        ssh = transport(dev_env, site)
        try:
            info = await ssh.run(["sinfo", "-h", "-o", "%R"])
            assert {line.strip() for line in info.stdout.splitlines()} == partitions
            assert (await ssh.run(["sacct", "-X", "-n", "-S", "now-1hour"])).exit_code == 0
        finally:
            await ssh.close()


async def test_arguments_reach_the_remote_side_as_plain_words(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    ssh = transport(dev_env, "alpha")
    hostile = "$(touch /tmp/gw-pwned) `touch /tmp/gw-pwned` ' \" ; touch /tmp/gw-pwned\nx"
    try:
        done = await ssh.run(["printf", "%s", hostile])
    finally:
        await ssh.close()
    assert done.stdout == hostile
    assert not Path("/tmp/gw-pwned").exists()


def test_up_on_a_running_stack_does_nothing(dev_env: dict[str, str]) -> None:
    stack = DevStack()
    before = {part.name: part.pid for part in stack.status()}
    started = time.monotonic()
    stack.up()
    assert time.monotonic() - started < 5
    assert {part.name: part.pid for part in stack.status()} == before
    assert all(part.state in ("running", "ready") for part in stack.status())
