"""Submitted code on a real site (alpha: Slurm over SSH, the bundle on its disk, jobs as its one account)
runs in its sandbox: each test is a real submission trying one escape, which must fail; and the routing
keeps leaderboard runs off sites whose isolation is not verified.

A submission reports what its attempts came to by failing its test with a JSON line ("FINDINGS {...}"):
{attempt: "blocked: <error>" | "reached: <what it got>"}."""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from gateway.config.settings import Settings
from gateway.config.sites import load_site
from gateway.config.tasks import load_task
from gateway.core.errors import UserError
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import Gateway, probe_gateway
from gateway.service.isolation import Verdict
from gateway.service.model import SubmitRequest
from gateway.sitecheck.isolation import run_isolation_probe
from tests.conftest import PROBLEMS, solution
from tests.integration.scratch import migrated_store
from tests.integration.site_files import dev_site_text, write_site

pytestmark = pytest.mark.integration

ATTEMPTS = """
import json, os, signal, socket
from task import input_t, output_t

FINDINGS = {}


def attempt(name, action):
    try:
        FINDINGS[name] = "reached: " + repr(action())[:200]
    except Exception as exc:
        FINDINGS[name] = "blocked: " + type(exc).__name__


def append(path, text):
    with open(path, "a") as f:
        f.write(text)
    return "appended"


def connect(host, port):
    with socket.create_connection((host, port), timeout=3) as conn:
        if conn.getsockname() == conn.getpeername():  # a loopback connect can meet itself: no service
            raise ConnectionRefusedError(111, "Connection refused: only a self-connection")
    return "connected"


ATTEMPTS_HERE


def custom_kernel(data: input_t) -> output_t:
    raise RuntimeError("FINDINGS " + json.dumps(FINDINGS, sort_keys=True))
"""


async def findings(gateway: Gateway, attempts: str) -> dict[str, str]:
    """Run a submission making ``attempts`` (lines of attempt(...) calls) on alpha; what came of each."""
    request = SubmitRequest(
        ATTEMPTS.replace("ATTEMPTS_HERE", attempts),
        "escape.py",
        "escape-artist",
        load_task(PROBLEMS / "vectoradd"),
        leaderboard=f"iso-{uuid.uuid4().hex[:8]}",  # a board of its own: never the demo's vectoradd
        site="alpha",
        gpu_type="H100",
        mode="test",
        admin=True,
    )
    report = await gateway.submit(request)
    assert report.result is not None and report.result.system.get("isolation") == "bubblewrap"
    error = report.error or ""
    assert "FINDINGS " in error, error
    found: dict[str, str] = json.loads(error.split("FINDINGS ", 1)[1].split(" | ")[0])
    return found


@pytest.fixture
async def alpha_ssh(gateway: Gateway) -> AsyncIterator[SSHTransport]:
    """alpha's login account, as the site's admin (or a queued run's bundle) sees it."""
    site = gateway.sites.configured["alpha"]
    assert site.login is not None
    ssh = SSHTransport("alpha-admin", site.login)
    try:
        yield ssh
    finally:
        await ssh.close()


async def alpha_workdir(ssh: SSHTransport) -> str:
    return f"{await ssh.home_dir()}/alpha-runs"


async def test_another_runs_bundle_can_be_neither_read_nor_changed(
    gateway: Gateway, alpha_ssh: SSHTransport
) -> None:
    # a queued run's bundle, as the gateway leaves it on the site's disk until its job starts
    victim = f"{await alpha_workdir(alpha_ssh)}/{uuid.uuid4()}"
    key = secrets.token_hex(32)
    await alpha_ssh.run(
        [
            "sh",
            "-c",
            'umask 077 && mkdir -p "$1/harness" && printf %s "$2" > "$1/key" && '
            'printf \'{"seed": 77}\' > "$1/spec.json" && printf "# trusted\\n" > "$1/harness/evaluator.py"',
            "plant",
            victim,
            key,
        ]
    )
    try:
        found = await findings(
            gateway,
            f"attempt('read key', lambda: open({victim + '/key'!r}).read())\n"
            f"attempt('read spec', lambda: open({victim + '/spec.json'!r}).read())\n"
            f"attempt('patch evaluator', lambda: append({victim + '/harness/evaluator.py'!r}, 'evil'))\n"
            f"attempt('list workdir', lambda: [n for n in os.listdir({str(Path(victim).parent)!r})])\n",
        )
        assert found["read key"].startswith("blocked"), found
        assert found["read spec"].startswith("blocked"), found
        assert found["patch evaluator"].startswith("blocked"), found
        assert victim.rsplit("/", 1)[1] not in found["list workdir"], found  # only its own folder shows
        after = await alpha_ssh.run(["cat", f"{victim}/harness/evaluator.py", f"{victim}/key"])
        assert after.stdout == "# trusted\n" + key
    finally:
        await alpha_ssh.run(["rm", "-rf", "--", victim])


async def test_its_own_key_and_spec_are_out_of_reach(gateway: Gateway) -> None:
    found = await findings(
        gateway,
        "attempt('own key', lambda: open('../key').read())\n"
        "attempt('own spec', lambda: open('../spec.json').read())\n"
        "attempt('own output log', lambda: open('../output.log').read())\n"
        "attempt('job script', lambda: open('../job.sh').read())\n",
    )
    assert all(outcome.startswith("blocked") for outcome in found.values()), found


async def test_home_ssh_and_local_are_out_of_reach(gateway: Gateway, alpha_ssh: SSHTransport) -> None:
    home = await alpha_ssh.home_dir()
    planted = f"{home}/.local/lib/python3.11/site-packages/planted-{secrets.token_hex(4)}.pth"
    found = await findings(
        gateway,
        f"attempt('list ssh', lambda: os.listdir({home + '/.ssh'!r}))\n"
        f"attempt('authorized keys', lambda: append({home + '/.ssh/authorized_keys'!r}, 'ssh-ed25519 A'))\n"
        f"attempt('plant pth', lambda: (os.makedirs(os.path.dirname({planted!r}), exist_ok=True), "
        f"append({planted!r}, 'import os'))[1])\n"
        f"attempt('venv site-packages', lambda: append({home + '/venv/pyvenv.cfg'!r}, 'x'))\n",
    )
    # what counts for the .pth is the real home: where the home lies under /tmp (a dev stack cloned
    # there), the write lands in the sandbox's own private /tmp and is gone with it
    assert all(outcome.startswith("blocked") for key, outcome in found.items() if key != "plant pth"), found
    present = await alpha_ssh.run(["test", "-e", planted], check=False)
    assert present.exit_code != 0


async def test_no_connection_to_postgresql_or_sshd(
    gateway: Gateway, stack_settings: Settings, dev_env: dict[str, str]
) -> None:
    database = urlparse(dev_env["GATEWAY_DATABASE_URL"])
    login = gateway.sites.configured["alpha"].login
    assert login is not None and database.hostname and database.port
    found = await findings(
        gateway,
        f"attempt('postgresql', lambda: connect({database.hostname!r}, {database.port}))\n"
        f"attempt('sshd', lambda: connect({login.host!r}, {login.port}))\n"
        "attempt('outside', lambda: connect('1.1.1.1', 443))\n"
        "attempt('interfaces', lambda: [n for _, n in socket.if_nameindex() if n != 'lo'] or 1 / 0)\n",
    )
    assert all(outcome.startswith("blocked") for outcome in found.values()), found


async def test_other_processes_can_be_neither_seen_nor_signalled(
    gateway: Gateway, alpha_ssh: SSHTransport
) -> None:
    # a process of the site's account outside the sandbox (another job, the login shell, sshd's child)
    seconds = str(7000 + secrets.randbelow(10**6))
    started = await alpha_ssh.run(["sh", "-c", 'sleep "$1" >/dev/null 2>&1 & echo $!', "sleeper", seconds])
    pid = int(started.stdout.strip())
    try:
        found = await findings(
            gateway,
            f"attempt('signal', lambda: os.kill({pid}, signal.SIGKILL))\n"
            "attempt('runner', lambda: [p for p in os.listdir('/proc') if p.isdigit() and "
            "b'harness/__main__.py' in open(f'/proc/{p}/cmdline', 'rb').read()] or 1 / 0)\n"
            f"attempt('see it', lambda: open('/proc/{pid}/cmdline').read())\n",
        )
        assert all(outcome.startswith("blocked") for outcome in found.values()), found
        alive = await alpha_ssh.run(["kill", "-0", str(pid)], check=False)
        assert alive.exit_code == 0
    finally:
        await alpha_ssh.run(["kill", str(pid)], check=False)


async def test_a_site_whose_job_script_drops_the_sandbox_fails_the_probe(
    stack_settings: Settings, dev_env: dict[str, str], tmp_path: Path
) -> None:
    """The probe proves what runs, not what the YAML says: a site template that starts the runner
    unconfined (a mistake an admin could make) fails it, naming what the probe reached."""
    dev_dir = Path(dev_env["GATEWAY_DEV_DIR"])
    path = write_site(
        tmp_path / "sites", "leaky", dev_site_text("alpha", dev_dir).replace("alpha", "leaky", 1)
    )
    site = load_site(path)
    templates = tmp_path / "templates"
    (templates / "sites").mkdir(parents=True)
    for name in ("base.sbatch.j2", "local.sh.j2", "fallback.sh.j2"):
        (templates / name).write_text((Path(stack_settings.templates_dir) / name).read_text())
    (templates / "sites" / "leaky.sbatch.j2").write_text(
        '{% extends "base.sbatch.j2" %}\n{% block run %}\ncd {{ bundle_dir }}\n'
        "exec {{ python }} -u -I {{ runner }} run {{ bundle_dir }} --isolation none\n{% endblock %}\n"
    )
    settings = stack_settings.model_copy(update={"templates_dir": templates})
    step = await run_isolation_probe(site, functools.partial(probe_gateway, settings))
    assert step.status == "FAIL", step
    for reached in ("sibling bundle's key", "~/.ssh", "the runner's process", "into the account's home"):
        assert reached in step.detail, step.detail


async def test_leaderboard_runs_need_verified_isolation(stack_settings: Settings) -> None:
    sites = {"alpha": load_site(stack_settings.sites_dir / "alpha.yaml")}
    verified: list[str] = []

    async def failing_probe(site: object) -> Verdict:
        verified.append("probe")
        return Verdict(False, "the probe reached: see network interfaces eth0")

    dsn = stack_settings.database_dsn()
    assert dsn is not None
    # a scratch database: the failed verdict is recorded, and must not keep the shared alpha off the board
    async with migrated_store(dsn, "test_isolation") as (store, _):
        gateway = Gateway(stack_settings, sites, store, verify_isolation=failing_probe)
        try:
            with pytest.raises(UserError, match="takes no leaderboard runs until its isolation"):
                await gateway.placement.route("alpha", "H100", "vectoradd", mode="leaderboard")
            with pytest.raises(UserError, match=r"eth0.*gateway sites check alpha"):
                await gateway.placement.route(None, "H100", "vectoradd", mode="leaderboard")
            assert verified == ["probe"]  # one probe; its failure is remembered
            assert not (await store.isolation_checks())["alpha"].passed
            assert (
                await gateway.placement.route(None, "H100", "vectoradd", mode="test")
            ).site.name == "alpha"
        finally:
            await gateway.close()  # the store too (migrated_store's close after it does nothing)
    # without a database nothing is ranked: a leaderboard-mode run (`--no-db`) waits for no probe
    without_store = Gateway(stack_settings, sites, None, verify_isolation=failing_probe)
    try:
        assert (await without_store.placement.route("alpha", "H100", mode="leaderboard")).site.name == "alpha"
        assert verified == ["probe"]
    finally:
        await without_store.close()


async def test_an_unconfined_site_takes_only_what_its_admin_allows(stack_settings: Settings) -> None:
    alpha = load_site(stack_settings.sites_dir / "alpha.yaml")
    unconfined = alpha.model_copy(
        update={"isolation": alpha.isolation.model_validate({"kind": "none", "unconfined_modes": ["test"]})}
    )
    gateway = Gateway(stack_settings, {"alpha": unconfined}, None)
    try:
        assert (await gateway.placement.route("alpha", "H100", mode="test")).site.name == "alpha"
        for mode in ("benchmark", "leaderboard"):
            with pytest.raises(UserError, match=r"unconfined.*allows only test"):
                await gateway.placement.route("alpha", "H100", mode=mode)
    finally:
        await gateway.close()


async def test_correct_slow_and_wrong_rank_as_before_in_the_sandbox(gateway: Gateway) -> None:
    board = f"iso-{uuid.uuid4().hex[:8]}"

    def entry(sol: str, user: str) -> SubmitRequest:
        return SubmitRequest(
            solution("vectoradd", sol),
            sol,
            user,
            load_task(PROBLEMS / "vectoradd"),
            leaderboard=board,
            site="alpha",
            gpu_type="H100",
            mode="leaderboard",
            admin=True,
        )

    slow, correct, wrong = await asyncio.gather(
        gateway.submit(entry("slow.py", "bob")),
        gateway.submit(entry("correct.py", "ada")),
        gateway.submit(entry("wrong.py", "eve")),
    )
    assert correct.passed and slow.passed and not wrong.passed, (correct.error, slow.error)
    assert correct.score is not None and slow.score is not None and correct.score < slow.score
    for report in (slow, correct, wrong):
        assert report.result is not None and report.result.system.get("isolation") == "bubblewrap"
