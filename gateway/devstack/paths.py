"""Where the dev stack keeps its state, and the fixed names and ports of its parts."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RUN_USER = "gwrun"
SITES = ("alpha", "beta")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
PG_BIN = Path("/usr/lib/postgresql/15/bin")

# ports: sshd per site, slurmctld/slurmd per cluster, slurmdbd, MariaDB, PostgreSQL
SSH_PORTS = {"alpha": 42201, "beta": 42202}
SLURMCTLD_PORTS = {"alpha": 42211, "beta": 42221}
SLURMD_PORTS = {"alpha": 42212, "beta": 42222}
SLURMDBD_PORT = 42230
MARIADB_PORT = 42231
POSTGRES_PORT = 42240


def repo_root() -> Path:
    """The folder holding pyproject.toml, found from this package's location."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return here.parents[2]


def default_state_dir() -> Path:
    env = os.environ.get("GATEWAY_DEV_DIR")
    return Path(env).resolve() if env else repo_root() / ".dev"


@dataclass(frozen=True)
class Paths:
    """Every path of the stack below one state folder."""

    root: Path

    @property
    def run(self) -> Path:
        """Our own pid files, one per daemon."""
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def munge(self) -> Path:
        return self.root / "munge"

    @property
    def mariadb(self) -> Path:
        return self.root / "mariadb"

    @property
    def slurm(self) -> Path:
        return self.root / "slurm"

    def cluster(self, site: str) -> Path:
        return self.slurm / site

    def slurm_conf(self, site: str) -> Path:
        return self.cluster(site) / "slurm.conf"

    @property
    def dbd(self) -> Path:
        return self.slurm / "dbd"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def client_key(self) -> Path:
        return self.ssh / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh / "known_hosts"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    def pidfile(self, part: str) -> Path:
        return self.run / f"{part}.pid"

    def log(self, part: str) -> Path:
        return self.logs / f"{part}.log"


def ensure_traversable(path: Path, say: Callable[[str], None] = print) -> None:
    """Give o+x to every ancestor of ``path`` that lacks it, so the non-root daemons and users reach it."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
            say(f"added o+x to {parent} so {RUN_USER} and the daemons can reach {path}")
