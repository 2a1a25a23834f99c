"""`gateway sites check NAME`: walk one site step by step, as its admin would by hand, and say per step
PASS, FAIL (with what to fix) or SKIP (with why). A step is skipped when a step it needs failed.

  yaml       the site's YAML validates (and the whole folder, which the gateway loads together)
  host key   known_hosts pins the login host (and the jump host), or trust_on_first_use is on
  connect    SSH connect + key auth as the login user; a changed host key is refused (HostKeyError)
  slurm      every Slurm command the gateway uses is found, `sbatch --version`, sacct answers
  partition  one per configured partition: exists, up, a node that can take jobs, the gres type, the time
  account    account and QOS, when set, are associated with the login user on this cluster
  workdir    the bundle folder can be created, written and cleaned
  compilers  what compiled submissions find after the setup lines: nvcc, hipcc/amdclang++, g++, ninja
  probe      one per GPU type: a real test-mode run of a tiny task through Gateway.submit (no database)
  isolation  a real run whose submission tries to reach a sibling bundle, the home, the network and the
             runner, and must fail each time (gateway/sitecheck/isolation.py); with a database, the
             verdict is recorded: leaderboard runs go only to a site whose isolation passed
"""

from __future__ import annotations

import functools
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path, PurePosixPath

from gateway.config.settings import Settings
from gateway.config.sites import SiteConfig, load_site, load_sites
from gateway.core.errors import CommandError, ConfigError, GatewayError, TransportError
from gateway.running.backends.factory import make_transport
from gateway.running.transport import Transport
from gateway.running.transport.ssh import HostKeyError, is_pinned, known_host_pattern
from gateway.service.isolation import Verdict
from gateway.sitecheck.compilers import KEY as COMPILERS_KEY
from gateway.sitecheck.compilers import TITLE as COMPILERS_TITLE
from gateway.sitecheck.compilers import check_compilers
from gateway.sitecheck.isolation import KEY as ISOLATION_KEY
from gateway.sitecheck.isolation import TITLE as ISOLATION_TITLE
from gateway.sitecheck.isolation import run_isolation_probe
from gateway.sitecheck.probe import DEFAULT_PROBE_TIMEOUT_S, GatewayForSite, Progress, probe_key, run_probe
from gateway.sitecheck.slurm import ClusterFacts, check_account, check_commands, check_partition
from gateway.sitecheck.step import Status, Step

__all__ = ["DEFAULT_PROBE_TIMEOUT_S", "SiteCheck", "Status", "Step"]
# Create the workdir, write, read back and remove a probe file, then report the free space there.
WORKDIR_SCRIPT = (
    'set -e; mkdir -p -- "$1"; probe="$1/.gateway-site-check.$$"; printf ok > "$probe"; '
    'test "$(cat -- "$probe")" = ok; rm -f -- "$probe"; df -Pk -- "$1" | tail -n 1'
)
TITLES = {
    "yaml": "site YAML",
    "host-key": "host key pinned",
    "connect": "connect + auth",
    "slurm": "slurm commands",
    "account": "account + qos",
    "workdir": "workdir writable",
}


class SiteCheck:
    """``async for step in SiteCheck(settings, name).steps()``; then ``passed`` says whether none failed."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        *,
        transport_factory: Callable[[SiteConfig], Transport] | None = None,
        probe: bool = True,
        probe_timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
        on_progress: Progress | None = None,
        record_isolation: Callable[[SiteConfig, Verdict], Awaitable[None]] | None = None,
        open_gateway: GatewayForSite | None = None,
    ) -> None:
        """``open_gateway`` makes the database-less gateway of one site that the probe jobs submit
        through (gateway.service.facade.probe_gateway); without it the probe steps cannot run."""
        self._settings = settings
        self._name = name
        self._transport_factory = transport_factory or make_transport
        self._probe = probe
        self._probe_timeout_s = probe_timeout_s
        self._on_progress = on_progress
        self._record_isolation = record_isolation
        self._open_gateway = open_gateway
        self._blocked: dict[str, str] = {}  # key -> title of steps that failed or could not run
        self._transport: Transport | None = None
        self._facts = ClusterFacts()
        self.results: list[Step] = []
        self.site: SiteConfig | None = None
        self.site_file: Path | None = None

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(step.status != "FAIL" for step in self.results)

    async def steps(self) -> AsyncIterator[Step]:
        try:
            yield self._record(self._check_yaml())
            site = self.site
            if site is None:
                return
            yield self._record(self._check_host_keys(site))
            yield await self._guarded("connect", ["host-key"], self._check_connect, site)
            yield await self._guarded("slurm", ["connect"], self._slurm, site)
            for index, partition in enumerate(site.partitions):
                check = functools.partial(self._partition, index=index)
                key, title = f"partition:{partition.name}", f"partition {partition.name}"
                yield await self._guarded(key, ["slurm"], check, site, title)
            yield await self._guarded("account", ["slurm"], self._account, site)
            yield await self._guarded("workdir", ["connect"], self._check_workdir, site)
            yield await self._guarded(COMPILERS_KEY, ["connect"], self._compilers, site, COMPILERS_TITLE)
            gpu_types: list[str | None] = [*site.gpu_types()] or [None]
            for gpu_type in gpu_types:
                key, title = probe_key(gpu_type)
                if not self._probe:
                    yield self._record(Step(key, title, "SKIP", "not asked for (--no-probe)"))
                    continue
                needs = ["connect", "slurm", "account", "workdir"]
                needs += [f"partition:{p.name}" for p in site.partitions_for(gpu_type)]
                probe = functools.partial(self._run_probe, gpu_type=gpu_type)
                yield await self._guarded(key, needs, probe, site, title)
            if not self._probe:
                yield self._record(Step(ISOLATION_KEY, ISOLATION_TITLE, "SKIP", "not asked for (--no-probe)"))
            else:
                needs = ["connect", "slurm", "account", "workdir", *(probe_key(g)[0] for g in gpu_types)]
                yield await self._guarded(ISOLATION_KEY, needs, self._run_isolation, site, ISOLATION_TITLE)
        finally:
            if self._transport is not None:
                await self._transport.close()

    def _record(self, step: Step, *, blocks: bool = False) -> Step:
        self.results.append(step)
        if step.status == "FAIL" or blocks:
            self._blocked[step.key] = step.title
        return step

    async def _guarded(
        self,
        key: str,
        needs: list[str],
        check: Callable[[SiteConfig], Awaitable[Step]],
        site: SiteConfig,
        title: str | None = None,
    ) -> Step:
        """Run a step unless a step it needs failed; a gateway error it raises is its failure."""
        title = title or TITLES[key]
        failed = [self._blocked[k] for k in needs if k in self._blocked]
        if failed:
            return self._record(Step(key, title, "SKIP", f"not run: needs {', '.join(failed)}"), blocks=True)
        try:
            step = await check(site)
        except GatewayError as exc:
            step = Step(key, title, "FAIL", str(exc), "see the error above")
        return self._record(step)

    # -- the YAML ---------------------------------------------------------------------------------

    def _check_yaml(self) -> Step:
        folder = self._settings.sites_dir
        key, title = "yaml", TITLES["yaml"]
        fix = "correct each line above (file:line: field: problem); `gateway sites validate` rechecks"
        if not folder.is_dir():
            return Step(key, title, "FAIL", f"{folder} is not a folder", "set GATEWAY_SITES_DIR")
        broken: dict[Path, str] = {}
        for path in sorted(folder.glob("*.yaml")):
            try:
                site = load_site(path)
            except ConfigError as exc:
                broken[path] = str(exc)
                continue
            if site.name == self._name and self.site is None:
                self.site, self.site_file = site, path
        if self.site is None:
            own = folder / f"{self._name}.yaml"
            if own in broken:
                return Step(key, title, "FAIL", broken[own], fix)
            files = ", ".join(sorted(p.name for p in folder.glob("*.yaml"))) or "none"
            found = f"no file in {folder} defines site {self._name!r} (files there: {files})"
            if broken:
                found += "; these do not validate, one of them may be it:\n" + "\n".join(broken.values())
            return Step(key, title, "FAIL", found, fix)
        try:
            load_sites(folder)
        except ConfigError as exc:
            return Step(
                key,
                title,
                "FAIL",
                f"{self.site_file} validates, but the folder does not, and the gateway loads it whole "
                f"(it would refuse to start):\n{exc}",
                fix,
            )
        parts = ", ".join(f"{p.name} ({p.gpu_type or 'no GPU type'})" for p in self.site.partitions)
        return Step(key, title, "PASS", f"{self.site_file} validates; partitions: {parts}")

    # -- host keys, connect ---------------------------------------------------------------------

    def _check_host_keys(self, site: SiteConfig) -> Step:
        key, title = "host-key", TITLES["host-key"]
        if site.submit_via != "ssh" or site.login is None:
            return Step(key, title, "SKIP", f"submit_via is {site.submit_via}: no SSH login")
        login = site.login
        hosts = [(login.host, login.port, "login")]
        if login.jump_host is not None:
            hosts.insert(0, (login.jump_host.host, login.jump_host.port, "login.jump_host"))
        try:
            unpinned = [(h, p, f) for h, p, f in hosts if not is_pinned(login.known_hosts, h, p)]
        except HostKeyError as exc:
            return Step(
                key, title, "FAIL", str(exc), "fix or replace the file (each line: host key-type key)"
            )
        if not unpinned:
            where = ", ".join(known_host_pattern(h, p) for h, p, _ in hosts)
            return Step(key, title, "PASS", f"{where} pinned in {login.known_hosts}")
        names = ", ".join(f"{known_host_pattern(h, p)} ({f})" for h, p, f in unpinned)
        if login.trust_on_first_use:
            return Step(
                key,
                title,
                "PASS",
                f"{names} not pinned yet; login.trust_on_first_use is on: the first connection records "
                "its key, and a later change is refused",
            )
        scans = "; ".join(
            f"ssh-keyscan -p {p} {shlex.quote(h)} >> {login.known_hosts}" for h, p, _ in unpinned
        )
        missing = "does not exist" if not login.known_hosts.is_file() else "has no key for it"
        return Step(
            key,
            title,
            "FAIL",
            f"no pinned host key for {names}: {login.known_hosts} {missing}",
            f"get the host key fingerprint from the site's admins, run `{scans}` and compare "
            "(ssh-keygen -lf); or set login.trust_on_first_use: true to accept the first key seen",
        )

    async def _check_connect(self, site: SiteConfig) -> Step:
        key, title = "connect", TITLES["connect"]
        login = site.login
        if login is not None:
            keys = [("login.identity_file", login.identity_file)]
            if login.jump_host is not None and login.jump_host.identity_file is not None:
                keys.append(("login.jump_host.identity_file", login.jump_host.identity_file))
            for field, path in keys:
                if not path.is_file():
                    return Step(key, title, "FAIL", f"{field} {path} does not exist", "point it at the key")
        self._transport = self._transport_factory(site)
        started = time.monotonic()
        try:
            who = (await self._transport.run(["id", "-un"], timeout=30)).stdout.strip()
            home = await self._transport.home_dir()
        except HostKeyError as exc:
            pattern = known_host_pattern(login.host, login.port) if login else ""
            known = login.known_hosts if login else "known_hosts"
            return Step(
                key,
                title,
                "FAIL",
                f"refused: {exc}",
                "a host key that differs from the pinned one is what a man-in-the-middle looks like: "
                "confirm the new key's fingerprint with the site's admins before you replace the line "
                f"(ssh-keygen -R '{pattern}' -f {known}, then ssh-keyscan)",
            )
        except (TransportError, CommandError) as exc:
            where = f"{login.user}@{login.host}:{login.port}" if login else "this machine"
            return Step(
                key,
                title,
                "FAIL",
                str(exc),
                f"check that {where} is reachable from here, that login.user is right, and that the "
                f"public half of {login.identity_file if login else 'the key'} is in the user's "
                "~/.ssh/authorized_keys on the site",
            )
        if login is not None and who != login.user:
            return Step(key, title, "FAIL", f"logged in as {who!r}, not {login.user!r}", "check login.user")
        elapsed_ms = (time.monotonic() - started) * 1000
        return Step(key, title, "PASS", f"logged in as {who} (home {home}) in {elapsed_ms:.0f} ms")

    # -- Slurm, the workdir, the probe ----------------------------------------------------------

    async def _slurm(self, site: SiteConfig) -> Step:
        return await check_commands(site, self._need_transport(), self._facts)

    async def _partition(self, site: SiteConfig, index: int) -> Step:
        return check_partition(site, index, self._facts)

    async def _account(self, site: SiteConfig) -> Step:
        return await check_account(site, self._need_transport(), self._facts)

    async def _compilers(self, site: SiteConfig) -> Step:
        return await check_compilers(site, self._need_transport())

    async def _check_workdir(self, site: SiteConfig) -> Step:
        key, title = "workdir", TITLES["workdir"]
        transport = self._need_transport()
        workdir = PurePosixPath(site.workdir)
        if not workdir.is_absolute():
            workdir = PurePosixPath(await transport.home_dir()) / workdir
        argv = ["sh", "-c", WORKDIR_SCRIPT, "gw-check", str(workdir)]
        done = await transport.run(argv, timeout=60, check=False)
        if done.exit_code != 0:
            return Step(
                key,
                title,
                "FAIL",
                f"cannot create and write {workdir}: {done.stderr.strip()[:300]}",
                "create it, writable by the login user, or set `workdir:` to a folder on a file system "
                "the compute nodes share",
            )
        fields = done.stdout.split()
        free = f"; {int(fields[3]) / 2**20:.1f} GiB free" if len(fields) >= 4 and fields[3].isdigit() else ""
        return Step(key, title, "PASS", f"{workdir} is writable{free}")

    async def _run_probe(self, site: SiteConfig, gpu_type: str | None) -> Step:
        return await run_probe(site, gpu_type, self._need_gateway(), self._probe_timeout_s, self._on_progress)

    async def _run_isolation(self, site: SiteConfig) -> Step:
        step = await run_isolation_probe(site, self._need_gateway(), self._probe_timeout_s, self._on_progress)
        if self._record_isolation is not None and step.status in ("PASS", "FAIL"):
            await self._record_isolation(site, Verdict(step.status == "PASS", step.detail))
        return step

    def _need_gateway(self) -> GatewayForSite:
        if self._open_gateway is None:
            raise GatewayError("no gateway to submit the probe through: pass open_gateway, or probe=False")
        return self._open_gateway

    def _need_transport(self) -> Transport:
        if self._transport is None:
            raise TransportError("no connection: the connect step did not run")
        return self._transport
