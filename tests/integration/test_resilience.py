"""What breaks in real life, against the real dev stack: sshd dies mid-job, the gateway is killed
mid-submit, a host key changes, a first contact with trust-on-first-use, a jump host."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.site_parts import JumpHostConfig
from gateway.config.sites import SiteConfig, load_sites
from gateway.config.tasks import load_task
from gateway.running.backends.base import JobRequest
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.bundle import build_spec
from gateway.running.transport.ssh import HostKeyError, SSHTransport
from gateway.service.facade import OPERATOR, Gateway, as_mode
from gateway.service.model import SubmitRequest
from gateway.store import NewRun
from tests.conftest import PROBLEMS, solution
from tests.integration.accounting import finished_jobs

pytestmark = pytest.mark.integration
SPARE_PORT = 42209  # a private sshd for alpha, so killing it disturbs nothing else
DEV = Path(os.environ.get("GATEWAY_DEV_DIR") or REPO_ROOT / ".dev")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text(errors="replace").rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found += [int(entry.name), *_children(int(entry.name))]
    return found


class PrivateSshd:
    """alpha's sshd configuration on another port, started and killed (with its sessions) at will."""

    def __init__(self, tmp: Path, port: int = SPARE_PORT) -> None:
        self.port = port
        conf = (DEV / "ssh" / "alpha" / "sshd_config").read_text()
        conf = conf.replace("Port 42201", f"Port {port}").replace(
            str(DEV / "ssh" / "alpha" / "sshd.pid"), str(tmp / "sshd.pid")
        )
        self.conf = tmp / "sshd_config"
        self.conf.write_text(conf)
        pub = (DEV / "ssh" / "alpha" / "ssh_host_ed25519_key.pub").read_text().split()
        self.known_hosts = tmp / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(self.conf), "-E", "/dev/null"])
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["bash", "-c", f"echo > /dev/tcp/127.0.0.1/{self.port}"], capture_output=True
        ).returncode:
            assert time.monotonic() < deadline, "private sshd did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        """The listener and every session it forked: clients see their connection drop."""
        assert self.proc is not None
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.proc = None


@pytest.fixture
def private_sshd(tmp_path: Path, dev_env: dict[str, str]) -> Iterator[PrivateSshd]:
    sshd = PrivateSshd(tmp_path)
    sshd.start()
    yield sshd
    if sshd.proc is not None:
        sshd.kill()


def alpha_on(port: int, known_hosts: Path, **login: object) -> SiteConfig:
    alpha = load_sites(REPO_ROOT / "site_configs")["alpha"]
    assert alpha.login is not None
    fields = {"port": port, "known_hosts": known_hosts} | login
    return alpha.model_copy(update={"login": alpha.login.model_copy(update=fields)})


def vectoradd(mode: str = "leaderboard", user: str = "resilient") -> SubmitRequest:
    return SubmitRequest(
        code=solution("vectoradd", "correct.py"),
        file_name="correct.py",
        user=user,
        task=load_task(PROBLEMS / "vectoradd"),
        leaderboard=f"res-{uuid.uuid4().hex[:8]}",
        site="alpha",
        gpu_type="H100",
        mode=as_mode(mode),
        admin=True,
    )


@pytest.fixture
async def private_gateway(stack_settings: Settings, private_sshd: PrivateSshd) -> AsyncIterator[Gateway]:
    gateway = await Gateway.open(stack_settings)
    gateway.sites.configured = {"alpha": alpha_on(SPARE_PORT, private_sshd.known_hosts)}
    yield gateway
    await gateway.close()


async def sacct_jobs(gateway: Gateway, run_id: str) -> list[list[str]]:
    """The Slurm jobs on alpha named after ``run_id`` (through the dev stack's own sshd), once ended."""
    alpha = load_sites(REPO_ROOT / "site_configs")["alpha"]
    assert alpha.login is not None
    ssh = SSHTransport("alpha", alpha.login)
    try:
        return await finished_jobs(ssh, ["JobIDRaw", "JobName"], run_id)
    finally:
        await ssh.close()


async def test_sshd_killed_mid_job_and_restarted_the_run_completes_and_is_recorded_once(
    private_gateway: Gateway, private_sshd: PrivateSshd
) -> None:
    running = asyncio.Event()

    async def on_event(_run: str, message: str) -> None:
        if message.startswith("phase"):
            running.set()

    submit = asyncio.create_task(private_gateway.submit(vectoradd(), on_event))
    await asyncio.wait_for(running.wait(), 60)
    private_sshd.kill()
    await asyncio.sleep(3)  # the job goes on on the cluster; the gateway sees only a dead connection
    private_sshd.start()
    report = await asyncio.wait_for(submit, 180)
    assert report.passed, report.error
    assert private_gateway.store is not None
    row = await private_gateway.store.get_run(report.run_id)
    assert row is not None and row.passed and row.state == "COMPLETED" and row.job_id == report.job_id
    jobs = await sacct_jobs(private_gateway, report.run_id)
    assert [job[0] for job in jobs] == [report.job_id]


def gateway_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "gateway"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | env,
    )


async def test_a_gateway_killed_after_submitting_resumes_without_a_second_job(
    gateway: Gateway, dev_env: dict[str, str]
) -> None:
    board = f"res-{uuid.uuid4().hex[:8]}"
    fast = {"GATEWAY_WORKER_HEARTBEAT_S": "0.5", "GATEWAY_WORKER_STALE_S": "3"}
    proc = gateway_cli(
        "submit",
        str(PROBLEMS / "vectoradd" / "solutions" / "correct.py"),
        "--task",
        str(PROBLEMS / "vectoradd"),
        "--leaderboard",
        board,
        "--site",
        "alpha",
        "--gpu",
        "H100",
        env=dev_env | fast,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "submitted as job" in line:
            proc.send_signal(signal.SIGKILL)  # no chance to cancel or record anything
            break
    proc.wait()
    assert gateway.store is not None
    unfinished = [r.run_id for r in await gateway.store.list_runs(leaderboard=board, unfinished=True)]
    assert len(unfinished) == 2  # the public run and its secret rerun
    resumed = gateway_cli("runs", "resume", *unfinished, env=dev_env | fast)
    out, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, out
    assert "taken over on alpha" in out
    for run_id in unfinished:
        row = await gateway.store.get_run(run_id)
        assert row is not None and row.passed and row.state == "COMPLETED"
        assert len(await sacct_jobs(gateway, run_id)) == 1


async def test_a_job_submitted_before_its_id_was_recorded_is_found_by_name(gateway: Gateway) -> None:
    """The narrowest window: a worker claimed the run, sbatch went through, and the worker died before
    writing the job id. The worker that takes the stale claim over finds the job by its name."""
    assert gateway.store is not None
    task = load_task(PROBLEMS / "vectoradd")
    board = await gateway.boards.create_leaderboard(f"res-{uuid.uuid4().hex[:8]}", task, caller=OPERATOR)
    run_id, key = str(uuid.uuid4()), "ab" * 32
    code = solution("vectoradd", "correct.py")
    await gateway.store.create_submission(
        "window", board.id, task.name, "correct.py", code, "test", [NewRun(run_id, "test", "H100", key)]
    )
    assert await gateway.store.claim("a-worker-that-dies", 1, 3.0, [run_id])
    site = gateway.sites.configured["alpha"]
    backend = gateway.sites.backend_for("alpha")
    assert isinstance(backend, SlurmBackend)
    request = JobRequest(run_id, site, site.partitions[0], task, code, build_spec(run_id, "test", task), key)
    [submitted] = await backend.submit([request])
    [report] = await gateway.resume(run_ids=[run_id])  # waits for the claim to go stale, then takes over
    assert report.passed, report.error
    assert report.job_id == submitted.job_id
    row = await gateway.store.get_run(run_id)
    assert row is not None and row.claims == 2 and row.job_id == submitted.job_id
    assert [job[0] for job in await sacct_jobs(gateway, run_id)] == [submitted.job_id]


async def test_a_changed_host_key_is_refused(private_sshd: PrivateSshd, tmp_path: Path) -> None:
    other = (DEV / "ssh" / "beta" / "ssh_host_ed25519_key.pub").read_text().split()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{SPARE_PORT} {other[0]} {other[1]}\n")
    site = alpha_on(SPARE_PORT, wrong, trust_on_first_use=True)  # TOFU never overrides a pinned key
    assert site.login is not None
    ssh = SSHTransport("alpha", site.login)
    with pytest.raises(HostKeyError, match="does not match"):
        await ssh.run(["true"])
    await ssh.close()


async def test_trust_on_first_use_only_when_the_site_says_so(
    private_sshd: PrivateSshd, tmp_path: Path
) -> None:
    empty = tmp_path / "fresh_known_hosts"
    strict = alpha_on(SPARE_PORT, empty)
    assert strict.login is not None
    with pytest.raises(HostKeyError, match="no host key"):
        await SSHTransport("alpha", strict.login).run(["true"])
    assert not empty.exists()
    trusting = alpha_on(SPARE_PORT, empty, trust_on_first_use=True)
    assert trusting.login is not None
    ssh = SSHTransport("alpha", trusting.login)
    assert (await ssh.run(["echo", "hi"])).stdout == "hi\n"
    await ssh.close()
    pinned = (DEV / "ssh" / "alpha" / "ssh_host_ed25519_key.pub").read_text().split()[1]
    assert pinned in empty.read_text()
    again = SSHTransport("alpha", strict.login)  # now pinned: the strict site connects too
    assert (await again.run(["true"])).exit_code == 0
    await again.close()


async def test_a_site_behind_a_jump_host(dev_env: dict[str, str]) -> None:
    """beta reached through alpha's sshd as the bastion: beta's partitions answer."""
    beta = load_sites(REPO_ROOT / "site_configs")["beta"]
    assert beta.login is not None
    jump = JumpHostConfig(host="127.0.0.1", port=42201, user="gwrun")
    login = beta.login.model_copy(update={"jump_host": jump})
    ssh = SSHTransport("beta", login)
    try:
        done = await ssh.run(["sinfo", "-h", "-o", "%R"])
    finally:
        await ssh.close()
    assert set(done.stdout.split()) == {"a100", "l4"}


async def test_a_gateway_on_the_login_node_submits_with_local_slurm_commands(
    stack_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """submit_via: local: no SSH at all; the same backend runs sbatch/squeue as subprocesses here."""
    monkeypatch.setenv("SLURM_CONF", str(DEV / "slurm" / "alpha" / "slurm.conf"))
    alpha = load_sites(REPO_ROOT / "site_configs")["alpha"]
    venv = DEV / "home" / "venv" / "bin" / "activate"
    site = alpha.model_copy(
        update={
            "name": "login-node",
            "submit_via": "local",
            "login": None,
            "workdir": str(tmp_path / "runs"),
            "setup": [f"source {venv}"],
        }
    )
    gateway = await Gateway.open(stack_settings, use_database=False)
    gateway.sites.configured = {"login-node": site}
    try:
        report = await gateway.submit(replace(vectoradd(mode="test"), user="local", site="login-node"))
    finally:
        await gateway.close()
    assert report.passed, report.error
    assert report.pushed and report.job_id is not None and report.job_id.isdigit()
    assert not (tmp_path / "runs" / report.run_id).exists()  # its bundle left once its result was in
