"""The isolation probe: a real run on the site whose submission tries what a hostile one would, and must
reach nothing: a sibling bundle's key (a decoy the check plants in the workdir), the files of the login
account's home and ~/.ssh, a file in ~/.local, a TCP connection to the site's sshd, a network interface
other than loopback, the trusted runner's process. It passes only when every attempt fails, and then the
site may take leaderboard runs (gateway/service/isolation.py asks for a passed check of its current settings).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import PurePosixPath

from gateway.config.sites import SiteConfig
from gateway.config.tasks import load_task
from gateway.core.errors import GatewayError
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.backends.warm_pool import WarmPoolBackend
from gateway.service.isolation import Verdict
from gateway.service.model import SubmitRequest
from gateway.sitecheck.probe import (
    DEFAULT_PROBE_TIMEOUT_S,
    PROBE_TASK_DIR,
    PROBE_TASK_NAME,
    PROBE_USER,
    GatewayForSite,
    ProbeGateway,
    Progress,
)
from gateway.sitecheck.step import Step

KEY, TITLE = "isolation", "isolation of submitted code"
DECOY_PREFIX = ".isolation-decoy-"
FIX_LEAK = (
    "submitted code is not confined: check the site's isolation settings (and that the job script passes "
    "them: a site template must keep the runner's options)"
)
# Plant a decoy bundle with a key as a queued run's would be (mode 0700/0600, the site account's own).
PLANT_SCRIPT = 'umask 077 && mkdir -p -- "$1" && printf "%s\\n" "$2" > "$1/key"'
PROBE_CODE = '''"""The site check's isolation probe: every attempt below must fail in the sandbox."""

import os
import socket

import torch

REACHED = []


def attempt(what, action):
    try:
        action()
    except Exception:
        return
    REACHED.append(what)


attempt("read a sibling bundle's key ({decoy})", lambda: open({decoy!r}).read())
# the path to its own task (and to a venv kept in the home) exists in the sandbox as empty folders; a file
# of the home must not
attempt("list ~/.ssh", lambda: os.listdir({ssh!r}))
try:
    _files = [e for e in os.listdir({home!r}) if os.path.isfile(os.path.join({home!r}, e))]
except OSError:
    _files = []
if _files:
    REACHED.append("see files in the login home ({home}): " + ", ".join(sorted(_files)[:5]))
try:  # whether it landed is checked from outside: a home under /tmp would take it in the sandbox's own /tmp
    os.makedirs(os.path.dirname({local!r}), exist_ok=True)
    open({local!r}, "w").write("planted")
except OSError:
    pass


def _reach_sshd():
    # a connect to a loopback port in the ephemeral range can pick that very port as its own and connect
    # to itself (TCP simultaneous open): only the service's banner shows it was reached
    with socket.create_connection(({host!r}, {port}), timeout=3) as conn:
        if conn.getsockname() == conn.getpeername() or not conn.recv(4).startswith(b"SSH-"):
            raise ConnectionRefusedError("not the site's sshd")


attempt("open a TCP connection to {host}:{port}", _reach_sshd)
_interfaces = [name for _, name in socket.if_nameindex() if name != "lo"]
if _interfaces:
    REACHED.append("see network interfaces " + ", ".join(_interfaces))
for _pid in (p for p in os.listdir("/proc") if p.isdigit()):
    try:
        _cmdline = open(f"/proc/{{_pid}}/cmdline", "rb").read()
    except OSError:
        continue
    if b"harness/__main__.py" in _cmdline:
        REACHED.append(f"see the runner's process (pid {{_pid}})")
        break


def custom_kernel(data: torch.Tensor) -> torch.Tensor:
    if REACHED:
        raise RuntimeError("isolation probe reached: " + "; ".join(REACHED))
    return data + data
'''


def probe_code(decoy: str, home: str, host: str, port: int, token: str) -> str:
    return PROBE_CODE.format(
        decoy=decoy,
        home=home,
        ssh=f"{home}/.ssh",
        local=f"{home}/.local/gateway-isolation-{token}",
        host=host,
        port=port,
    )


async def run_isolation_probe(
    site: SiteConfig,
    open_gateway: GatewayForSite,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    on_progress: Progress | None = None,
) -> Step:
    """One probe run on ``site`` (a Slurm site), through ``open_gateway(site)``: a gateway of that site and
    no database."""
    if not site.isolation.confined:
        modes = ", ".join(site.isolation.unconfined_modes) or "nothing"
        return Step(
            KEY,
            TITLE,
            "SKIP",
            f"isolation: none: submitted code runs unconfined as {_account(site)}; this site takes only "
            f"what its admin allows ({modes}), never leaderboard runs",
        )
    gateway = open_gateway(site)
    started = time.monotonic()
    try:
        backend = gateway.sites.backend_for(site.name)
        if isinstance(backend, WarmPoolBackend):
            backend = backend.slurm
        if not isinstance(backend, SlurmBackend):
            return Step(KEY, TITLE, "SKIP", f"site {site.name} is not a Slurm site")
        token = secrets.token_hex(8)
        workdir = await backend.workdir()
        decoy = workdir / f"{DECOY_PREFIX}{token}"
        home = await backend.transport.home_dir()
        await backend.transport.run(["sh", "-c", PLANT_SCRIPT, "gw-plant", str(decoy), token], timeout=30)
        planted = f"{home}/.local/gateway-isolation-{token}"
        try:
            step = await _probe(gateway, site, decoy, home, token, timeout_s, on_progress, started)
            landed = await backend.transport.run(["test", "-e", planted], timeout=30, check=False)
            if landed.exit_code != 0:
                return step
            wrote = f"the probe wrote {planted} into the account's home"
            detail = f"{step.detail}; {wrote}" if step.status == "FAIL" else wrote
            return Step(KEY, TITLE, "FAIL", detail, FIX_LEAK)
        finally:
            await backend.transport.run(["rm", "-rf", "--", str(decoy), planted], timeout=30, check=False)
    except GatewayError as exc:
        return Step(KEY, TITLE, "FAIL", str(exc), "see the error above; the probe job step tells more")
    finally:
        await gateway.close()


async def _probe(
    gateway: ProbeGateway,
    site: SiteConfig,
    decoy: PurePosixPath,
    home: str,
    token: str,
    timeout_s: float,
    on_progress: Progress | None,
    started: float,
) -> Step:
    host, port = (site.login.host, site.login.port) if site.login else ("127.0.0.1", 22)
    code = probe_code(str(decoy / "key"), home, host, port, token)
    task = load_task(PROBE_TASK_DIR, name=PROBE_TASK_NAME)

    async def progress(_run_id: str, message: str) -> None:
        if on_progress is not None:
            await on_progress(f"{TITLE}: {message}")

    request = SubmitRequest(code, "submission.py", PROBE_USER, task, site=site.name, mode="test", admin=True)
    try:
        report = await asyncio.wait_for(gateway.submit(request, progress), timeout_s)
    except TimeoutError:
        return Step(KEY, TITLE, "FAIL", f"no result within {timeout_s:.0f} s", "see the probe job step")
    where = f"job {report.job_id} on {site.name}"
    if report.passed:
        return Step(
            KEY,
            TITLE,
            "PASS",
            f"{where}, isolation {site.isolation.kind}: the probe reached no sibling bundle, no home, no "
            f"network and no other process ({time.monotonic() - started:.1f} s)",
        )
    error = report.error or "the probe failed"
    if "isolation probe reached" in error:
        fix = FIX_LEAK
    else:
        fix = "the sandbox did not start: read the error (is bubblewrap installed, are user namespaces on?)"
    return Step(KEY, TITLE, "FAIL", f"{where}: {error}", fix)


async def verify_isolation(open_gateway: GatewayForSite, site: SiteConfig) -> Verdict:
    """The gateway's own check before a site's first leaderboard run (gateway/service/isolation.py)."""
    step = await run_isolation_probe(site, open_gateway)
    return Verdict(step.status == "PASS", step.detail)


def _account(site: SiteConfig) -> str:
    return f"the site's account {site.login.user}" if site.login else "the site's account"
