"""Slurm accounting objects of the dev stack: an account and a QOS that gwrun is associated with on both
clusters, so a site YAML may say `account: research` and `qos: short` exactly as on a real site.

Idempotent: each object is looked up first and only what is missing is added, so `up` (and tests) may
call :func:`ensure_accounts` any number of times against a running stack.
"""

from __future__ import annotations

import os
import time

from gateway.devstack.errors import DevStackError
from gateway.devstack.paths import RUN_USER, SITES, Paths
from gateway.devstack.proc import run

ACCOUNT = "research"
QOS = "short"
QOS_MAX_WALL = "00:30:00"


def _sacctmgr(paths: Paths, *args: str) -> str:
    # slurmdbd is shared by both clusters: any cluster's slurm.conf reaches it
    env = dict(os.environ, SLURM_CONF=str(paths.slurm_conf(SITES[0])))
    return run(["sacctmgr", "-i", "-n", "-P", *args], env=env, timeout=60).stdout


def _lines(text: str) -> list[list[str]]:
    return [line.split("|") for line in text.splitlines() if line.strip()]


def _wait_for_clusters(paths: Paths, timeout: float = 30.0) -> None:
    """A freshly started slurmctld registers its cluster with slurmdbd a moment later; an association
    naming a cluster slurmdbd does not know yet is refused."""
    deadline = time.monotonic() + timeout
    known: set[str] = set()
    while time.monotonic() < deadline:
        known = {row[0] for row in _lines(_sacctmgr(paths, "show", "cluster", "format=cluster"))}
        if set(SITES) <= known:
            return
        time.sleep(0.5)
    raise DevStackError(
        f"slurmdbd knows clusters {sorted(known)}, not all of {list(SITES)}, {timeout:.0f} s after they "
        f"started; see the slurmctld logs under {paths.slurm}"
    )


def ensure_accounts(paths: Paths) -> str:
    """Make QOS ``short`` and account ``research`` exist and associate gwrun with both on every cluster."""
    _wait_for_clusters(paths)
    added = []
    clusters = ",".join(SITES)
    if not _lines(_sacctmgr(paths, "show", "qos", f"name={QOS}", "format=name")):
        _sacctmgr(paths, "add", "qos", QOS, f"MaxWall={QOS_MAX_WALL}")
        added.append(f"qos {QOS}")
    have = {row[0] for row in _lines(_sacctmgr(paths, "show", "account", ACCOUNT, "format=account"))}
    if ACCOUNT not in have:
        _sacctmgr(
            paths,
            "add",
            "account",
            ACCOUNT,
            f"cluster={clusters}",
            "description=dev stack research account",
            "organization=dev",
        )
        added.append(f"account {ACCOUNT}")
    assocs = _lines(
        _sacctmgr(
            paths, "show", "assoc", f"user={RUN_USER}", f"account={ACCOUNT}", "format=cluster,account,qos"
        )
    )
    on = {row[0] for row in assocs}
    missing = [site for site in SITES if site not in on]
    if missing:
        _sacctmgr(paths, "add", "user", RUN_USER, f"account={ACCOUNT}", f"cluster={','.join(missing)}")
        added.append(f"{RUN_USER} in {ACCOUNT} on {', '.join(missing)}")
    assocs = _lines(
        _sacctmgr(
            paths, "show", "assoc", f"user={RUN_USER}", f"account={ACCOUNT}", "format=cluster,account,qos"
        )
    )
    without_qos = [row[0] for row in assocs if QOS not in row[2].split(",")]
    if without_qos:
        _sacctmgr(
            paths,
            "modify",
            "user",
            "where",
            f"name={RUN_USER}",
            f"account={ACCOUNT}",
            f"cluster={','.join(without_qos)}",
            "set",
            f"qos+={QOS}",
        )
        added.append(f"qos {QOS} for {RUN_USER} on {', '.join(without_qos)}")
    done = "; ".join(added) if added else "present"
    return f"account {ACCOUNT}, qos {QOS}, user {RUN_USER} on {clusters}: {done}"
