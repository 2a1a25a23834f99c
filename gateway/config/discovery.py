"""Zero-config on a login node: the local Slurm cluster read from its own commands, as a site.

When no site is configured and ``sbatch`` is on the PATH, `gateway submit --gpu X` submits through this
machine's Slurm (``submit_via: local``) instead of running the kernel on the login node, and `gateway sites
init` writes the same discovery as a site YAML to review. Three quick Slurm commands, run at once:
``sinfo`` (partitions, their gres and MaxTime), ``scontrol show config`` (the cluster's name) and one
``sacctmgr`` query (the user's default account and associations). Only ``sinfo`` must answer: without
accounting the site charges Slurm's defaults. sinfo's ``--json`` in Slurm 22.05 lists nodes but not
partitions, so partitions are read from a ``|``-delimited ``--format``.

The result is an ordinary SiteConfig: the same validation, template and isolation rules as a site file.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from gateway.config.cluster_info import (
    ACCOUNTS_FORMAT,
    CONFIG_ARGV,
    SINFO_ARGV,
    UNTYPED,
    Association,
    SlurmPartition,
    format_time,
    gpu_type_name,
    parse_associations,
    parse_cluster_name,
    parse_default_account,
    parse_partitions,
)
from gateway.config.site_parts import IsolationConfig, PartitionConfig
from gateway.config.sites import LOCAL_SITE_NAME, SiteConfig
from gateway.core.commands import CommandRunner, CompletedCommand, SubprocessRunner
from gateway.core.errors import CommandError, UserError
from gateway.core.modes import UNRANKED_MODES

# sinfo retries a missing slurm.conf for 60 s: a login node answers in milliseconds, so do not wait long
COMMAND_TIMEOUT_S = 10.0
# A discovered partition's job time: the site default, shortened to the partition's MaxTime.
DEFAULT_TIME_S = 10 * 60
WORKDIR = ".cache/kernel-gateway/slurm-runs"
NEXT_STEP = (
    "write a site file with `gateway sites init` (see docs/sites.md), or pass --site local to run here"
)
_SAFE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_PYTHON = re.compile(r"^[A-Za-z0-9_./+-]+$")


class DiscoveryError(UserError):
    """The local Slurm could not be read well enough to make a site (the message says what to do)."""


def sbatch_on_path() -> bool:
    """Whether this looks like a login node: Slurm's sbatch is on the PATH."""
    return shutil.which("sbatch") is not None


@dataclass(frozen=True)
class Discovery:
    """What the local Slurm said, the site made of it, and what a reviewer should know."""

    cluster: str
    site: SiteConfig
    untyped: list[str] = field(default_factory=list)  # partitions with GPUs of no gres type
    notes: list[str] = field(default_factory=list)

    def check_offers(self, gpu_type: str) -> None:
        """Raise a message that says what to do when ``--gpu gpu_type`` cannot run on this cluster."""
        if self.site.partitions_for(gpu_type):
            return
        offered = ", ".join(self.site.gpu_types()) or "none with a gres type"
        message = f"cluster {self.cluster} (found with sinfo) has no partition with GPU type {gpu_type!r}"
        if self.untyped:
            message += (
                f"; partition(s) {', '.join(self.untyped)} have GPUs whose gres names no type (gpu:N), so "
                "their model is unknown: run `gateway sites init`, set gpu_type in the file it writes, "
                "then submit with --gpu or --site"
            )
        raise DiscoveryError(f"{message}; offered: {offered}")


# -- the site ------------------------------------------------------------------------------------------


def site_name(cluster: str | None) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", cluster or "")
    if not name or not name[0].isalpha():
        name = f"slurm-{name}" if name else "slurm"
    name = name[:64]
    return f"{name}-slurm" if name == LOCAL_SITE_NAME else name


def _partition_gpu(partition: SlurmPartition, taken: set[str]) -> str | None:
    """The one gres type a partition stands for: the type its name says (beta's ``l4`` on nodes with
    A100s and L4s), else its only type, else the first type no other partition stands for yet."""
    types = [t for t in partition.gpus if t != UNTYPED]
    for kind in types:
        if kind.lower() == partition.name.lower() or gpu_type_name(kind).lower() == partition.name.lower():
            return kind
    if len(types) == 1:
        return types[0]
    fresh = [t for t in types if gpu_type_name(t) not in taken]
    chosen = fresh or types
    return chosen[0] if chosen else None


def build_discovery(
    cluster: str | None,
    partitions: Sequence[SlurmPartition],
    associations: Sequence[Association],
    default_account: str | None,
    *,
    python: str,
    isolation: str,
    hostname: str = "",
) -> Discovery:
    """A site from what Slurm said (raises DiscoveryError when no partition has GPUs)."""
    name = site_name(cluster)
    notes: list[str] = []
    typed: list[PartitionConfig] = []
    untyped: list[PartitionConfig] = []
    taken: set[str] = set()
    # the cluster's default partition first: routing takes the first of equals
    for part in sorted(partitions, key=lambda p: not p.default):
        if not part.gpus:
            continue
        if not part.up:
            notes.append(f"partition {part.name} is not up: left out")
            continue
        if not _SAFE_NAME.match(part.name):
            notes.append(f"partition {part.name!r} has characters a site file does not take: left out")
            continue
        limit = DEFAULT_TIME_S if part.max_time_s is None else min(DEFAULT_TIME_S, part.max_time_s)
        kind = _partition_gpu(part, taken)
        if kind is None:
            untyped.append(
                PartitionConfig(name=part.name, gpu_type=None, gres="gpu:1", time_limit=format_time(limit))
            )
            continue
        gpu = gpu_type_name(kind)
        taken.add(gpu)
        per_node = max(1, min(64, part.gpus.get(kind, 1)))  # a multi-GPU task fits only where they are
        typed.append(
            PartitionConfig(
                name=part.name,
                gpu_type=gpu,
                gres=f"gpu:{kind}:1",
                time_limit=format_time(limit),
                gpus_per_node=per_node,
            )
        )
    if not typed and not untyped:
        raise DiscoveryError(
            f"sinfo shows no partition with GPUs (gres gpu) on cluster {cluster or '(unnamed)'} that is up; "
            f"{NEXT_STEP}"
        )
    mine = [a for a in associations if cluster is None or a.cluster == cluster]
    account = qos = None
    if mine:
        chosen = next((a for a in mine if a.account == default_account), mine[0])
        account = chosen.account if _SAFE_NAME.match(chosen.account) else None
        qos = chosen.default_qos if _SAFE_NAME.match(chosen.default_qos) else None
        if not qos and chosen.qos:
            notes.append(
                f"account {chosen.account} may use QOS {', '.join(chosen.qos)}: Slurm picks its default"
            )
    else:
        notes.append("no association of yours found with sacctmgr: Slurm charges your default account")
    unconfined = list(UNRANKED_MODES) if isolation == "none" else []
    site = SiteConfig(
        name=name,
        title=f"Slurm cluster {cluster or name}, discovered on {hostname or 'this login node'}",
        submit_via="local",
        workdir=WORKDIR,
        python=python,
        isolation=IsolationConfig(kind=isolation, unconfined_modes=unconfined),  # type: ignore[arg-type]
        account=account,
        qos=qos,
        partitions=typed + untyped,
    )
    return Discovery(cluster or name, site, [p.name for p in untyped], notes)


# Whether an interpreter has torch as a job runs it (-I: no PYTHONPATH, no user site).
TORCH_CHECK = "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)"
PATH_PYTHON = "python3"


def own_python() -> str | None:
    """This gateway's interpreter, when a site file can name it."""
    return sys.executable if sys.executable and _PYTHON.match(sys.executable) else None


# -- running the commands --------------------------------------------------------------------------------


def _first_line(done: CompletedCommand | BaseException) -> str:
    if isinstance(done, CommandError):
        text = (done.stderr or done.stdout or str(done)).strip()
        if done.timed_out:
            text = f"no answer within {COMMAND_TIMEOUT_S:.0f} s" + (
                f" ({text.splitlines()[0][:200]})" if text else ""
            )
    elif isinstance(done, BaseException):
        text = str(done) or type(done).__name__
    else:
        text = (done.stderr or done.stdout).strip()
    return text.splitlines()[0][:300] if text else "no output"


def _check_slurm_conf() -> None:
    """A SLURM_CONF that names no file: say so at once (sinfo would retry it for a minute)."""
    conf = os.environ.get("SLURM_CONF")
    if conf and not os.path.isfile(conf):
        raise DiscoveryError(f"sinfo failed: SLURM_CONF names {conf}, which is not a file; {NEXT_STEP}")


async def discover(
    isolation: str = "bubblewrap", runner: CommandRunner | None = None, user: str | None = None
) -> Discovery:
    """Read the local cluster (its commands at once, each bounded) and make its site."""
    _check_slurm_conf()
    runner = runner or SubprocessRunner()
    user = user or getpass.getuser()
    argvs: list[Sequence[str]] = [
        SINFO_ARGV,
        CONFIG_ARGV,
        ("sacctmgr", "-n", "-P", "show", "user", user, "withassoc", ACCOUNTS_FORMAT),
    ]

    async def run(argv: Sequence[str]) -> CompletedCommand:
        try:
            return await runner.run(argv, timeout=COMMAND_TIMEOUT_S, check=False)
        except OSError as exc:  # not installed
            return CompletedCommand(tuple(argv), 127, "", f"{argv[0]}: {exc.strerror or exc}")

    # jobs run this gateway's own python when it has torch (a login node's venv is on the shared file
    # system and the harness extra put torch in it), else python3 from the PATH sbatch passes on
    mine = own_python()
    if mine is not None:
        argvs.append((mine, "-I", "-c", TORCH_CHECK))
    results: list[Any] = await asyncio.gather(*(run(a) for a in argvs), return_exceptions=True)
    sinfo, config, accounts = results[:3]
    torch_here = mine is not None and isinstance(results[3], CompletedCommand) and results[3].exit_code == 0
    python = mine if torch_here and mine is not None else PATH_PYTHON
    if isinstance(sinfo, BaseException) or sinfo.exit_code != 0:
        raise DiscoveryError(f"sinfo failed: {_first_line(sinfo)}; {NEXT_STEP}")
    partitions = parse_partitions(sinfo.stdout)
    ok = [r if isinstance(r, CompletedCommand) and r.exit_code == 0 else None for r in (config, accounts)]
    cluster = parse_cluster_name(ok[0].stdout) if ok[0] else None
    associations = parse_associations(ok[1].stdout) if ok[1] else []
    default_account = parse_default_account(ok[1].stdout) if ok[1] else None
    found = build_discovery(
        cluster,
        partitions,
        associations,
        default_account,
        python=python,
        isolation=isolation,
        hostname=socket.gethostname(),
    )
    if not torch_here:
        found.notes.append(
            f"this gateway's python ({mine or sys.executable}) has no torch: jobs run {PATH_PYTHON} from the "
            "PATH you submit with (sbatch passes your environment on); it needs torch"
        )
    if ok[1] is None:
        found.notes.append(
            f"sacctmgr failed ({_first_line(accounts)}): account and QOS left to Slurm's defaults"
        )
    if ok[0] is None:
        found.notes.append(
            f"scontrol show config failed ({_first_line(config)}): site named {found.site.name}"
        )
    return found


# -- the site file --------------------------------------------------------------------------------------


def site_yaml(found: Discovery) -> str:
    """The discovery as a site file to review: the fields that matter, with what to check in comments."""
    site = found.site
    body: dict[str, Any] = {
        "name": site.name,
        "title": site.title,
        "submit_via": "local",
        "workdir": site.workdir,
        "python": site.python,
        "setup": list(site.setup),
        "isolation": site.isolation.kind
        if not site.isolation.unconfined_modes
        else {"kind": site.isolation.kind, "unconfined_modes": list(site.isolation.unconfined_modes)},
        "account": site.account,
        "qos": site.qos,
        "partitions": [
            {
                "name": p.name,
                "gpu_type": p.gpu_type,
                "gres": p.gres,
                "time_limit": p.time_limit,
                "cpus_per_gpu": 1,
                "gpus_per_node": p.gpus_per_node,
            }
            for p in site.partitions
        ],
    }
    header = [
        f"# Discovered from this login node's Slurm (cluster {found.cluster}) by `gateway sites init`.",
        "# Review it, then `gateway sites check " + site.name + "`. Every field: docs/sites.md.",
        "# submit_via: local - jobs go through this machine's sbatch as you; no SSH.",
        "# python: the interpreter jobs run; the compute nodes must see it and it needs torch",
        "#   (else add setup lines, e.g. `module load ...` or `source .../bin/activate`).",
        "# workdir: relative to your home; it must be on a file system the compute nodes share.",
        "# time_limit: 10 minutes, or the partition's MaxTime when shorter.",
    ]
    header += [f"# note: {note}" for note in found.notes]
    if found.untyped:
        header.append(
            f"# partitions {', '.join(found.untyped)}: their gres names no GPU type; set gpu_type (e.g. H100)"
        )
    return "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)
