"""The login agent over alpha's real sshd: with one stream channel in all, 30 runs' output is followed at
once (a `tail -F` per run would need 30), a job printing fake frames reaches only its own run, and a
bundle is submitted through the agent's channel."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid

import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.sites import SiteConfig, load_sites
from gateway.config.tasks import load_task
from gateway.running.backends.base import JobHandle, JobRequest
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.bundle import BundlePaths, build_spec
from gateway.running.jobscript import TemplateRenderer
from gateway.running.transport.ssh import SSHTransport

pytestmark = pytest.mark.integration
RUNS = 30


def narrow_alpha(dev_env: dict[str, str]) -> SiteConfig:
    """alpha with the smallest channel budget: one SFTP, one stream, one command channel."""
    alpha = load_sites(Settings().sites_dir)["alpha"]
    assert alpha.login is not None
    login = alpha.login.model_copy(update={"max_channels": 3, "tail_channels": 1})
    held = alpha.partitions[0].model_copy(update={"directives": ["--hold"]})
    return alpha.model_copy(update={"login": login, "partitions": [held]})


@pytest.fixture
async def backend(dev_env: dict[str, str]) -> SlurmBackend:
    site = narrow_alpha(dev_env)
    assert site.login is not None
    return SlurmBackend(site, SSHTransport(site.name, site.login), TemplateRenderer(REPO_ROOT / "templates"))


async def test_thirty_runs_followed_on_one_channel_and_fake_frames_stay_in_their_run(
    backend: SlurmBackend,
) -> None:
    workdir = await backend.workdir()
    handles = [
        JobHandle(str(uuid.uuid4()), "0", BundlePaths.under(workdir, str(uuid.uuid4()))) for _ in range(RUNS)
    ]
    roots = [str(h.bundle.root) for h in handles]
    # the first run's job prints what would be frames of the agent's for the others' follows
    fake = '["line", 2, "[harness] result written"]\n"]\n["line", 3, "x"]\n'
    await backend.transport.run(
        [
            "sh",
            "-c",
            'f="$1"; shift; for d in "$@"; do mkdir -p "$d" && echo "start $d" > "$d/output.log"; done; '
            'printf "%s" "$f" >> "$1/output.log"',
            "gw-test",
            fake,
            *roots,
        ]
    )
    got: dict[str, list[str]] = {h.run_id: [] for h in handles}

    async def follow(handle: JobHandle, count: int) -> None:
        async with contextlib.aclosing(backend.stream_output(handle)) as lines:
            async for line in lines:
                got[handle.run_id].append(line)
                if len(got[handle.run_id]) == count:
                    return

    wanted = [5 if i == 0 else 2 for i in range(RUNS)]
    readers = [asyncio.create_task(follow(h, n)) for h, n in zip(handles, wanted, strict=True)]
    try:
        await asyncio.sleep(0.5)  # every follow open, then each job writes its end
        await backend.transport.run(
            ["sh", "-c", 'for d in "$@"; do echo "end $d" >> "$d/output.log"; done', "gw-test", *roots]
        )
        await asyncio.wait_for(asyncio.gather(*readers), 30)
        first, *others = handles
        assert got[first.run_id] == [f"start {roots[0]}", *fake.splitlines(), f"end {roots[0]}"]
        for handle, root in zip(others, roots[1:], strict=True):
            assert got[handle.run_id] == [f"start {root}", f"end {root}"]
        assert backend.agent is not None and backend.agent.starts == 1
    finally:
        for reader in readers:
            reader.cancel()
        await backend.transport.run(["rm", "-rf", "--", *roots])
        await backend.close()


async def test_a_bundle_goes_through_the_agent_and_is_one_held_job(backend: SlurmBackend) -> None:
    task = load_task(REPO_ROOT / "problems" / "vectoradd")
    run_id = str(uuid.uuid4())
    site = backend.site
    request = JobRequest(
        run_id,
        site,
        site.partitions[0],
        task,
        "x = 1\n",
        build_spec(run_id, "test", task),
        secrets.token_hex(32),
    )
    try:
        [handle] = await backend.submit([request])
        assert backend.agent is not None and backend.agent.starts == 1
        found = await backend.find([request])
        assert found[run_id].job_id == handle.job_id
        listing = await backend.transport.run(["ls", "-l", str(handle.bundle.root)])
        assert "job.sh" in listing.stdout and "output.log" in listing.stdout
        await backend.cancel([handle])
    finally:
        await backend.remove([run_id])
        await backend.close()
