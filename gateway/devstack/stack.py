"""DevStack: start, stop and inspect the whole local stack (munge, MariaDB, slurmdbd, two Slurm clusters,
one sshd per site, PostgreSQL, the gwrun user's torch venv), all of its state in one folder."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.devstack import accounts, mariadb, munge, packages, postgres, slurm, sshd, users
from gateway.devstack.errors import DevStackError
from gateway.devstack.paths import (
    MARIADB_PORT,
    POSTGRES_PORT,
    RUN_USER,
    SITES,
    SLURMCTLD_PORTS,
    SLURMD_PORTS,
    SLURMDBD_PORT,
    SSH_PORTS,
    Paths,
    default_state_dir,
    ensure_traversable,
    repo_root,
)
from gateway.devstack.proc import alive, cmdline, pid_state, say, stop

_DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "slurmstepd", "sshd", "postgres")


@dataclass(frozen=True)
class PartStatus:
    """One part of the stack: state is "running"/"stopped" for daemons, "ready"/"missing" for the venv."""

    name: str
    state: str
    pid: int | None
    detail: str


def slurm_conf(site: str) -> Path:
    """The slurm.conf of a dev cluster (``alpha`` or ``beta``) under the default state folder."""
    return Paths(default_state_dir()).slurm_conf(site)


class DevStack:
    def __init__(self, state_dir: Path | None = None) -> None:
        self.paths = Paths((state_dir or default_state_dir()).resolve())

    @property
    def state_dir(self) -> Path:
        return self.paths.root

    # ------------------------------------------------------------------ queries

    def _daemon_pids(self) -> dict[str, int | None]:
        p = self.paths
        pids: dict[str, int | None] = {
            "munge": munge.pid(p),
            "mariadb": mariadb.pid(p),
            "slurmdbd": slurm.dbd_pid(p),
        }
        for site in SITES:
            pids[f"slurmctld {site}"] = slurm.ctld_pid(p, site)
            pids[f"slurmd {site}"] = slurm.slurmd_pid(p, site)
        for site in SITES:
            pids[f"sshd {site}"] = sshd.pid(p, site)
        pids["postgres"] = postgres.pid(p)
        return pids

    def is_up(self) -> bool:
        return (
            all(pid is not None for pid in self._daemon_pids().values())
            and self.paths.env_file.exists()
            and users.venv_ready(self.paths)
        )

    def env(self) -> dict[str, str]:
        if not postgres.password_file(self.paths).exists():
            raise DevStackError(f"the dev stack in {self.paths.root} was never started: run `gateway dev up`")
        return {
            "GATEWAY_DATABASE_URL": postgres.database_url(self.paths),
            "GATEWAY_SITES_DIR": str(repo_root() / "site_configs"),
            "GATEWAY_DEV_DIR": str(self.paths.root),
        }

    def status(self) -> list[PartStatus]:
        details = {
            "munge": "/run/munge/munge.socket.2",
            "mariadb": f"127.0.0.1:{MARIADB_PORT}",
            "slurmdbd": f"127.0.0.1:{SLURMDBD_PORT}",
            "postgres": f"127.0.0.1:{POSTGRES_PORT}",
        }
        for site in SITES:
            details[f"slurmctld {site}"] = f"port {SLURMCTLD_PORTS[site]}"
            details[f"slurmd {site}"] = f"port {SLURMD_PORTS[site]}, node {slurm.CLUSTERS[site].node}"
            details[f"sshd {site}"] = f"127.0.0.1:{SSH_PORTS[site]}"
        result = []
        for name, pid in self._daemon_pids().items():
            detail = details[name]
            if pid is not None and name.startswith("slurmd "):
                node = slurm.node_state(self.paths, name.split()[1])
                detail += f" ({node or 'unknown'})"
            result.append(PartStatus(name, "running" if pid else "stopped", pid, detail))
        ready = users.venv_ready(self.paths)
        result.append(
            PartStatus(
                f"{RUN_USER} venv",
                "ready" if ready else "missing",
                None,
                str(self.paths.venv) + (" (torch)" if ready else ""),
            )
        )
        return result

    # ------------------------------------------------------------------ up

    def up(self) -> None:
        started = time.monotonic()
        if self.is_up():
            # a checkout that moved on may bring new migrations: applying none costs ~0.1 s
            say(f"dev stack already up (state in {self.paths.root}); migrations: {self._migrate()}")
            return
        p = self.paths
        steps: list[tuple[str, Callable[[], str]]] = [
            ("packages", self._packages),
            ("state folder", self._state_dir),
            ("munge", lambda: munge.start(p)),
            ("client key", self._client_key),
            (f"user {RUN_USER}", lambda: users.ensure_user(p)),
            ("mariadb", lambda: mariadb.start(p)),
            ("slurmdbd", lambda: slurm.start_dbd(p)),
        ]
        for site in SITES:
            steps.append((f"cluster {site}", lambda site=site: slurm.start_cluster(p, site)))  # type: ignore[misc]
        # after the clusters: each registers itself with slurmdbd, and associations name clusters
        steps.append(("slurm accounts", lambda: accounts.ensure_accounts(p)))
        for site in SITES:
            steps.append((f"sshd {site}", lambda site=site: sshd.start(p, site)))  # type: ignore[misc]
        steps += [
            ("ssh check", self._verify_ssh),
            ("postgres", lambda: postgres.start(p)),
            ("migrations", self._migrate),
            (f"{RUN_USER} venv", lambda: users.ensure_venv(p)),
            ("env file", self._write_env),
        ]
        for name, step in steps:
            t0 = time.monotonic()
            outcome = step()
            say(f"[{time.monotonic() - t0:5.1f} s] {name}: {outcome}")
        say(f"dev stack up in {time.monotonic() - started:.1f} s (state in {p.root}, env in {p.env_file})")

    def _packages(self) -> str:
        installed = packages.ensure_packages()
        return ("installed " + " ".join(installed)) if installed else "all present"

    def _state_dir(self) -> str:
        p = self.paths
        p.root.mkdir(parents=True, exist_ok=True)
        p.root.chmod(0o755)
        for folder in (p.run, p.logs, p.slurm, p.ssh):
            folder.mkdir(exist_ok=True)
        ensure_traversable(p.root)
        return str(p.root)

    def _client_key(self) -> str:
        sshd.ensure_client_key(self.paths)
        return str(self.paths.client_key)

    def _verify_ssh(self) -> str:
        sshd.write_known_hosts(self.paths)
        for site in SITES:
            sshd.verify(self.paths, site, [part.name for part in slurm.CLUSTERS[site].partitions])
        return "each site shows its own partitions over ssh (pinned host keys)"

    def _migrate(self) -> str:
        from gateway.core.errors import StoreError
        from gateway.store.migrate import apply_migrations

        try:
            applied = apply_migrations(postgres.database_url(self.paths))
        except StoreError as exc:
            raise DevStackError(f"migrations failed: {exc}") from exc
        return f"{applied} applied" if applied else "up to date"

    def _write_env(self) -> str:
        env = self.env()
        keys = ("GATEWAY_DATABASE_URL", "GATEWAY_SITES_DIR")
        fd = os.open(self.paths.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join(f"{key}={env[key]}\n" for key in keys))
        return str(self.paths.env_file)

    # ------------------------------------------------------------------ down

    def down(self, purge: bool = False) -> None:
        started = time.monotonic()
        p = self.paths
        stopped: list[tuple[str, str | None]] = []
        for site in reversed(SITES):
            stopped.append((f"sshd {site}", sshd.stop_part(p, site)))
        for site in reversed(SITES):
            stopped.extend(slurm.stop_cluster(p, site))
        stopped.append(("slurmdbd", slurm.stop_dbd(p)))
        stopped.append(("mariadb", mariadb.stop_part(p)))
        stopped.append(("postgres", postgres.stop_part(p)))
        stopped.append(("munge", munge.stop_part(p)))
        for name, outcome in stopped:
            if outcome is not None:
                say(f"{name}: {outcome}")
        if not any(outcome for _, outcome in stopped):
            say("no daemon of the dev stack was running")
        p.env_file.unlink(missing_ok=True)
        if p.run.is_dir():
            for pidfile in p.run.glob("*.pid"):
                pidfile.unlink()
        leftovers = self.leftovers()
        for pid, argv in leftovers:
            say(f"leftover process {pid} ({' '.join(argv)[:100]}): {stop(pid, timeout=5)}")
        remaining = self.leftovers()
        if remaining:
            listing = "\n".join(f"  {pid} {' '.join(argv)[:120]}" for pid, argv in remaining)
            raise DevStackError(f"processes of the dev stack are still running:\n{listing}")
        reaped = _wait_for_reaping(timeout=10.0)
        if reaped:
            say(f"waited for PID 1 to reap {reaped} exited daemon(s)")
        say("verified: no process of the dev stack is left")
        if purge and p.root.exists():
            shutil.rmtree(p.root)
            say(f"purged {p.root}")
        say(f"dev stack down in {time.monotonic() - started:.1f} s")

    def leftovers(self) -> list[tuple[int, list[str]]]:
        """Live processes that belong to the stack: the run user's, and our daemons that name the state
        folder on their command line or in SLURM_CONF. Never this process or its ancestors."""
        root = str(self.paths.root)
        spared = _ancestors()
        run_uid = users.uid()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid in spared or not alive(pid):
                continue
            try:
                owner = entry.stat().st_uid
                comm = (entry / "comm").read_text(errors="replace").strip()
            except OSError:
                continue
            argv = cmdline(pid)
            mine = run_uid is not None and owner == run_uid
            if not mine and comm in _DAEMONS:
                mine = any(root in part for part in argv) or _slurm_conf_in(pid, root)
            if mine:
                found.append((pid, argv or [comm]))
        return found


def _daemon_zombies() -> list[int]:
    zombies = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_state(int(entry.name)) == "Z":
            try:
                if (entry / "comm").read_text(errors="replace").strip() in _DAEMONS:
                    zombies.append(int(entry.name))
            except OSError:
                continue
    return zombies


def _wait_for_reaping(timeout: float) -> int:
    """Stopped daemons are children of PID 1, which reaps them late here: wait until their entries are
    gone, so that `ps` right after `down` shows nothing of the stack, not even <defunct> lines."""
    first = len(_daemon_zombies())
    deadline = time.monotonic() + timeout
    while _daemon_zombies() and time.monotonic() < deadline:
        time.sleep(0.1)
    return first


def _slurm_conf_in(pid: int, root: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(item.startswith(b"SLURM_CONF=") and root.encode() in item for item in environ.split(b"\0"))


def _ancestors() -> set[int]:
    pids = set()
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
        except OSError:
            break
        pid = int(stat[stat.rfind(")") + 2 :].split()[1])
    return pids
