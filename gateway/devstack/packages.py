"""Install the Debian packages the stack (and its tests) need, only when one of their binaries is missing."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.devstack.errors import DevStackError
from gateway.devstack.paths import PG_BIN
from gateway.devstack.proc import run, say

# binary -> package that provides it
REQUIRED: dict[str, str] = {
    "/usr/sbin/munged": "munge",
    "/usr/sbin/slurmctld": "slurm-wlm",
    "/usr/sbin/slurmd": "slurm-wlm",
    "/usr/bin/sbatch": "slurm-wlm",
    "/usr/bin/sacct": "slurm-wlm",
    "/usr/sbin/slurmdbd": "slurmdbd",
    "/usr/sbin/mariadbd": "mariadb-server",
    "/usr/bin/mariadb": "mariadb-server",
    "/usr/bin/mariadb-install-db": "mariadb-server",
    "/usr/sbin/sshd": "openssh-server",
    "/usr/bin/ssh-keygen": "openssh-client",
    str(PG_BIN / "postgres"): "postgresql",
    # the web pages' tests drive it (fonts come with it: fontconfig depends on fonts-dejavu-core)
    "/usr/bin/chromium": "chromium",
    # the sandbox around submitted code (the sites' isolation: bubblewrap)
    "/usr/bin/bwrap": "bubblewrap",
}

_NO_LISTS = ("Unable to locate package", "has no installation candidate", "Failed to fetch")


def missing_packages() -> list[str]:
    wanted = {pkg for binary, pkg in REQUIRED.items() if not Path(binary).exists()}
    return sorted(wanted)


def ensure_packages() -> list[str]:
    """Install what is missing with apt-get; return the packages installed (empty when none were)."""
    packages = missing_packages()
    if not packages:
        return []
    if os.geteuid() != 0:
        raise DevStackError(f"packages {', '.join(packages)} are missing and installing them needs root")
    say(f"installing Debian packages: {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    first = run(install, env=env, timeout=900, check=False)
    if first.returncode != 0:
        output = first.stdout + first.stderr
        if not any(marker in output for marker in _NO_LISTS):
            lines = "\n".join(output.strip().splitlines()[-25:])
            raise DevStackError(f"apt-get install failed:\n{lines}")
        say("package lists are missing or stale: running apt-get update")
        run(["apt-get", "update"], env=env, timeout=600)
        run(install, env=env, timeout=900)
    still = missing_packages()
    if still:
        raise DevStackError(f"after apt-get install these packages still lack binaries: {', '.join(still)}")
    return packages
