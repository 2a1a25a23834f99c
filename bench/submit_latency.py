"""(a) Submit latency: the gateway's submit on a warm connection (the bundle's files to the login agent on
its open channel, which writes them and runs `sbatch --parsable`: one round trip) against, in the same run,
a bare local `sbatch` of the same script, the way without the agent (ONE shell command per submit that
unpacks a tar and runs sbatch), and Open OnDemand's way, a fresh SSH connection per step (upload the
bundle, then sbatch). Jobs are submitted held (`--hold`, a partition directive) and cancelled, so the
cluster does no work and the times are the submission alone. Targets: <= 2x bare sbatch; >= 5x faster
than fresh connections."""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console

from bench.common import Row, report
from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.sites import SiteConfig, load_sites
from gateway.config.tasks import load_task
from gateway.core.commands import SubprocessRunner
from gateway.devstack.paths import Paths, default_state_dir
from gateway.running.backends.base import JobRequest
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.backends.slurm_output import parse_sbatch_parsable
from gateway.running.bundle import BundlePaths, build_spec, bundle_files, stage_bundle
from gateway.running.jobscript import TemplateRenderer
from gateway.running.transport.ssh import SSHTransport

REPEATS = 25


def held_alpha() -> SiteConfig:
    alpha = load_sites(Settings().sites_dir)["alpha"]
    partition = alpha.partitions[0].model_copy(update={"directives": ["--hold"]})
    return alpha.model_copy(update={"partitions": [partition]})


TASK = load_task(REPO_ROOT / "problems" / "vectoradd")


def request(site: SiteConfig, code: str) -> JobRequest:
    task = TASK
    run_id = str(uuid.uuid4())
    return JobRequest(
        run_id, site, site.partitions[0], task, code, build_spec(run_id, "test", task), secrets.token_hex(32)
    )


async def main(console: Console) -> list[Row]:
    site = held_alpha()
    assert site.login is not None
    code = (REPO_ROOT / "problems" / "vectoradd" / "solutions" / "correct.py").read_text()
    renderer = TemplateRenderer(Settings().templates_dir)
    transport = SSHTransport("alpha", site.login)
    backend = SlurmBackend(site, transport, renderer)
    await transport.run(["true"])  # the warm connection the gateway keeps
    shell_transport = SSHTransport("alpha", site.login)
    shell_backend = SlurmBackend(site, shell_transport, renderer)
    shell_backend.agent = None  # a site where the agent cannot run: one shell command per submit
    await shell_transport.run(["true"])
    workdir = await backend.workdir()
    paths = Paths(default_state_dir())
    local = SubprocessRunner(env={"SLURM_CONF": str(paths.slurm_conf("alpha")), "PATH": "/usr/bin:/bin"})
    job_ids: list[str] = []
    gateway_ms: list[float] = []
    bare_ms: list[float] = []
    fresh_ms: list[float] = []
    shell_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        # the bare baseline submits one real bundle's job.sh, as root on this machine (the controller)
        first = request(site, code)
        [handle] = await backend.submit([first])  # starts the login agent, as the gateway's first does
        job_ids.append(handle.job_id)
        [handle] = await shell_backend.submit([request(site, code)])  # makes the work folder, once
        job_ids.append(handle.job_id)
        script = str(handle.bundle.job_script)
        for i in range(REPEATS):
            job = request(site, code)  # the task is loaded once by the service, not per submit
            start = time.perf_counter()
            [handle] = await backend.submit([job])
            gateway_ms.append((time.perf_counter() - start) * 1000)
            job_ids.append(handle.job_id)

            start = time.perf_counter()
            [handle] = await shell_backend.submit([request(site, code)])
            shell_ms.append((time.perf_counter() - start) * 1000)
            job_ids.append(handle.job_id)

            start = time.perf_counter()
            done = await local.run(["sbatch", "--parsable", script])
            bare_ms.append((time.perf_counter() - start) * 1000)
            job_ids.append(parse_sbatch_parsable(done.stdout))

            req = request(site, code)
            target = BundlePaths.under(workdir, req.run_id)
            staging = Path(tmp) / str(i)
            start = time.perf_counter()
            stage_bundle(
                staging,
                bundle_files(req.task, code, req.spec, req.key_hex, backend.render(req, target)),
            )
            upload = SSHTransport("alpha", site.login)
            await upload.upload_dir(staging, str(target.root))
            await upload.close()
            submit = SSHTransport("alpha", site.login)
            done = await submit.run(["sbatch", "--parsable", str(target.job_script)])
            await submit.close()
            fresh_ms.append((time.perf_counter() - start) * 1000)
            job_ids.append(parse_sbatch_parsable(done.stdout))
    await local.run(["scancel", *job_ids])  # as root: the bare baseline's jobs are root's
    await backend.close()
    await shell_backend.close()
    gateway = statistics.median(gateway_ms)
    rows = [
        Row(
            "gateway submit, warm connection",
            "bare local sbatch, same script",
            statistics.median(bare_ms),
            gateway,
        ),
        Row(
            "gateway submit, warm connection",
            "one shell command per submit (tar, sbatch; no agent)",
            statistics.median(shell_ms),
            gateway,
        ),
        Row(
            "gateway submit, warm connection",
            "fresh SSH connection per step (upload, sbatch)",
            statistics.median(fresh_ms),
            gateway,
        ),
    ]
    report("submit_latency: job id in hand (median of 25; targets >= 0.5x and >= 5x)", rows, console)
    return rows
