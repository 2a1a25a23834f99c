"""The site check's Slurm steps: the commands (sbatch --version, sacct answers), each partition (exists,
up, usable nodes, gres type, time limit, a warm pool's lifetime) and the account/QOS association of the
login user."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from gateway.config.cluster_info import parse_gres_items, parse_time_s
from gateway.config.site_parts import PartitionConfig
from gateway.config.sites import SiteConfig
from gateway.running.transport import Transport
from gateway.sitecheck.step import Step

# Which of the Slurm commands the gateway uses the login shell cannot find.
MISSING_COMMANDS_SCRIPT = 'for c in "$@"; do command -v -- "$c" > /dev/null 2>&1 || echo "$c"; done'
GATEWAY_COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "sinfo")
FIX_PATH = "set slurm.bin_dir (or slurm.<command>) in the YAML to where the login node has Slurm's commands"
# Node states (sinfo %t, flags stripped) in which a node can still take jobs, now or when it frees up.
USABLE_NODE_STATES = ("idle", "mix", "alloc", "comp")


@dataclass(frozen=True)
class PartitionRow:
    """One line of `sinfo -h -a -o %R|%a|%t|%G|%l`: a group of a partition's nodes in one state."""

    partition: str
    available: str  # up, down, drain, inact
    state: str  # idle, mix, alloc, drain, down*, ...
    gres: str  # gpu:h100:2(S:0-1),gpu:l4:1 or (null)
    time_limit: str  # 10:00, 1-00:00:00, infinite


def parse_sinfo(stdout: str) -> list[PartitionRow]:
    rows = []
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 5:
            rows.append(PartitionRow(parts[0].rstrip("*"), *parts[1:]))
    return rows


def gres_offered(gres: str) -> list[str]:
    """`gpu:a100:2(S:0-1),gpu:l4:1` -> ["gpu:a100", "gpu:l4"] (name and type, without counts)."""
    return [f"{item.name}:{item.type}" if item.type else item.name for item in parse_gres_items(gres)]


def gres_wanted(gres: str) -> list[str]:
    """What a partition's `gres:` asks for, in the form of :func:`gres_offered`."""
    return gres_offered(gres)


def parse_slurm_time(text: str) -> int | None:
    """Seconds in a Slurm time (gateway.config.cluster_info.parse_time_s); None for `infinite`, `UNLIMITED` or
    anything unreadable, which then limits nothing."""
    try:
        return parse_time_s(text)
    except ValueError:
        return None


def partition_problems(
    partition: PartitionConfig, path: str, rows: list[PartitionRow]
) -> tuple[str, str] | None:
    """The first problem of ``partition`` on a cluster whose sinfo gave ``rows``, as (what, fix)."""
    mine = [r for r in rows if r.partition == partition.name]
    if not mine:
        there = ", ".join(sorted({r.partition for r in rows})) or "none"
        return (
            f"partition {partition.name!r} does not exist on the cluster (its partitions: {there})",
            f"correct {path}.name in the YAML, or remove that entry",
        )
    if all(r.available != "up" for r in mine):
        return (
            f"partition {partition.name!r} is {mine[0].available}: it takes no jobs",
            "ask the site's admins to bring it up (scontrol update partitionname=... state=up)",
        )
    states = sorted({r.state for r in mine})
    if not any(r.state.rstrip("*~#!%$@^-") in USABLE_NODE_STATES for r in mine):
        return (
            f"partition {partition.name!r} has no node that can take jobs (node states: {', '.join(states)})",
            "ask the site's admins to resume its nodes (scontrol update nodename=... state=resume)",
        )
    if partition.gres:
        offered = sorted({g for r in mine for g in gres_offered(r.gres)})
        missing = [
            want
            for want in gres_wanted(partition.gres)
            if not any(have == want or have.startswith(want + ":") for have in offered)
        ]
        if missing:
            example = f" (e.g. {offered[0]}:1)" if offered else ""
            return (
                f"nodes of {partition.name!r} offer gres {', '.join(offered) or 'none'}, "
                f"not {', '.join(missing)}",
                f"set {path}.gres to what the nodes offer{example}, or point {path}.name at the "
                f"partition that has {', '.join(missing)}",
            )
    limit = parse_slurm_time(mine[0].time_limit)
    wanted = parse_slurm_time(partition.time_limit)
    if limit is not None and wanted is not None and wanted > limit:
        return (
            f"{path}.time_limit {partition.time_limit} is above the partition's MaxTime "
            f"{mine[0].time_limit}: Slurm would refuse or hold every job (PartitionTimeLimit)",
            f"lower {path}.time_limit to at most {mine[0].time_limit}",
        )
    pool = partition.warm_pool
    if limit is not None and pool is not None and pool.max_lifetime_s > limit:
        return (
            f"{path}.warm_pool.max_lifetime {pool.max_lifetime} is above the partition's MaxTime "
            f"{mine[0].time_limit}: every pool job would pend for ever (PartitionTimeLimit)",
            f"lower {path}.warm_pool.max_lifetime to at most {mine[0].time_limit} (and keep it over "
            f"{path}.time_limit)",
        )
    return None


@dataclass
class ClusterFacts:
    """What the slurm step learnt, for the steps after it."""

    cluster: str | None = None
    rows: list[PartitionRow] = field(default_factory=list)


async def check_commands(site: SiteConfig, transport: Transport, facts: ClusterFacts) -> Step:
    key, title = "slurm", "slurm commands"
    commands = [site.slurm.argv0(c) for c in GATEWAY_COMMANDS]
    missing = await transport.run(["sh", "-c", MISSING_COMMANDS_SCRIPT, "gw-check", *commands], timeout=30)
    if missing.stdout.strip():
        lost = ", ".join(missing.stdout.split())
        return Step(key, title, "FAIL", f"not found by the login shell: {lost}", FIX_PATH)
    version = await transport.run([site.slurm.argv0("sbatch"), "--version"], timeout=30, check=False)
    if version.exit_code != 0:
        return Step(key, title, "FAIL", f"sbatch --version failed: {version.stderr.strip()[:300]}", FIX_PATH)
    sacct = await transport.run(
        [site.slurm.argv0("sacct"), "-X", "-n", "-P", "-j", "1", "-o", "JobIDRaw"], timeout=60, check=False
    )
    if sacct.exit_code != 0:
        return Step(
            key,
            title,
            "FAIL",
            f"sacct fails: {sacct.stderr.strip()[:300]}",
            "the gateway needs job accounting (slurmdbd) to find a job before it submits again; ask the "
            "site's admins for AccountingStorageType=accounting_storage/slurmdbd",
        )
    config = await transport.run([_sibling(site, "scontrol"), "show", "config"], timeout=30, check=False)
    for line in config.stdout.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "ClusterName":
            facts.cluster = value.strip() or None
    sinfo = await transport.run(
        [site.slurm.argv0("sinfo"), "-h", "-a", "-o", "%R|%a|%t|%G|%l"], timeout=30, check=False
    )
    if sinfo.exit_code != 0:
        return Step(key, title, "FAIL", f"sinfo failed: {sinfo.stderr.strip()[:300]}", FIX_PATH)
    facts.rows = parse_sinfo(sinfo.stdout)
    cluster = f", cluster {facts.cluster}" if facts.cluster else ""
    return Step(key, title, "PASS", f"{version.stdout.strip()}{cluster}; sacct answers")


def check_partition(site: SiteConfig, index: int, facts: ClusterFacts) -> Step:
    partition = site.partitions[index]
    key, title = f"partition:{partition.name}", f"partition {partition.name}"
    problem = partition_problems(partition, f"partitions[{index}]", facts.rows)
    if problem is not None:
        return Step(key, title, "FAIL", *problem)
    rows = [r for r in facts.rows if r.partition == partition.name]
    states = ",".join(sorted({r.state for r in rows}))
    gres = ",".join(sorted({r.gres for r in rows})) or "none"
    return Step(
        key,
        title,
        "PASS",
        f"up, nodes {states}, gres {gres} (jobs ask {partition.gres or 'none'}), "
        f"time limit {partition.time_limit} within MaxTime {rows[0].time_limit}",
    )


async def check_account(site: SiteConfig, transport: Transport, facts: ClusterFacts) -> Step:
    key, title = "account", "account + qos"
    if site.account is None and site.qos is None:
        return Step(key, title, "SKIP", "neither account nor qos is set: jobs use the user's defaults")
    user = (await transport.run(["id", "-un"], timeout=30)).stdout.strip()
    argv = [site.slurm.argv0("sacctmgr"), "-n", "-P", "show", "assoc", f"user={user}"]
    if facts.cluster:
        argv.append(f"cluster={facts.cluster}")
    done = await transport.run([*argv, "format=cluster,account,qos"], timeout=60, check=False)
    if done.exit_code != 0:
        why = done.stderr.strip()[:300]
        return Step(key, title, "FAIL", f"sacctmgr failed: {why}", "ask the site's admins")
    assocs = [line.split("|") for line in done.stdout.splitlines() if line.count("|") >= 2]
    on = f" on cluster {facts.cluster}" if facts.cluster else ""
    where = f" cluster={facts.cluster}" if facts.cluster else ""
    accounts = sorted({a[1] for a in assocs})
    if site.account is not None and site.account not in accounts:
        return Step(
            key,
            title,
            "FAIL",
            f"{user} is not associated with account {site.account!r}{on}; "
            f"their accounts: {', '.join(accounts) or 'none'}",
            f"ask the admins to run `sacctmgr add user {user} account={site.account}{where}`, "
            "or correct `account:` in the YAML",
        )
    usable = [a for a in assocs if site.account is None or a[1] == site.account]
    allowed = sorted({q for a in usable for q in a[2].split(",") if q})
    if site.qos is not None and site.qos not in allowed:
        in_account = f" account={site.account}" if site.account else ""
        return Step(
            key,
            title,
            "FAIL",
            f"QOS {site.qos!r} is not allowed for {user}{on}"
            + (f" in account {site.account}" if site.account else "")
            + f"; allowed: {', '.join(allowed) or 'none'}",
            f"ask the admins to run `sacctmgr modify user where name={user}{in_account}{where} "
            f"set qos+={site.qos}`, or correct `qos:` in the YAML",
        )
    said = ", ".join(f"{n} {v}" for n, v in (("account", site.account), ("qos", site.qos)) if v)
    return Step(key, title, "PASS", f"{user} may use {said}{on}")


def _sibling(site: SiteConfig, command: str) -> str:
    """A Slurm command the site YAML has no override for, found next to its sbatch."""
    sbatch = site.slurm.argv0("sbatch")
    return str(PurePosixPath(sbatch).parent / command) if "/" in sbatch else command
