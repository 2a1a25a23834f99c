"""What a Slurm cluster says about itself, for zero-config discovery (gateway/discovery.py): the commands
that ask (sinfo's partitions, scontrol's cluster name, sacctmgr's associations) and their output parsed.
Pure: the unit tests feed output captured on the dev stack's clusters."""

from __future__ import annotations

import re
from dataclasses import dataclass

SINFO_FORMAT = "%P|%R|%l|%G|%a"
SINFO_ARGV = ("sinfo", "--noheader", f"--format={SINFO_FORMAT}")
CONFIG_ARGV = ("scontrol", "show", "config")
# one sacctmgr call (each costs slurmdbd a query): the user's default account with every association
ACCOUNTS_FORMAT = "format=user,defaultaccount,cluster,account,partition,qos,defaultqos"
UNTYPED = ""  # the gres type of `gpu:4`: Slurm knows GPUs are there, not which


@dataclass(frozen=True)
class SlurmPartition:
    """One partition as sinfo shows it (its lines merged: one per group of nodes with the same gres)."""

    name: str
    default: bool
    max_time_s: int | None  # None: infinite
    gpus: dict[str, int]  # gres type (UNTYPED for a gres without one) -> GPUs on its largest node
    up: bool


@dataclass(frozen=True)
class Association:
    cluster: str
    account: str
    partition: str
    qos: tuple[str, ...]
    default_qos: str


# -- parsing Slurm's output (pure; the unit tests feed captured output) ------------------------------


def parse_time_s(text: str) -> int | None:
    """A Slurm time as sinfo prints it ("10:00" is 10 minutes, "1:00:00", "2-00:00:00", "30" minutes)
    in seconds; None for "infinite"/"UNLIMITED"; a ValueError for anything else."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited"):
        return None
    days = 0
    if "-" in text:
        day, text = text.split("-", 1)
        days = int(day)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:
        seconds = parts[0] * 60
    elif len(parts) == 2:
        seconds = parts[0] * 60 + parts[1]
    elif len(parts) == 3:
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    else:
        raise ValueError(f"not a Slurm time: {text!r}")
    return days * 86400 + seconds


def format_time(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def parse_gres(text: str) -> dict[str, int]:
    """GPUs in a gres string (``gpu:h100:4(S:0-1),gpu:l4:1``, ``gpu:2``, ``(null)``): type -> count."""
    gpus: dict[str, int] = {}
    for item in re.sub(r"\([^)]*\)", "", text).split(","):
        parts = item.strip().split(":")
        if parts[0] != "gpu":
            continue
        count_text = parts[-1] if len(parts) > 1 else "1"
        if len(parts) == 2 and not count_text.isdigit():
            kind, count = parts[1], 1  # gpu:h100
        else:
            kind = ":".join(parts[1:-1]) if len(parts) > 2 else UNTYPED
            count = int(count_text) if count_text.isdigit() else 1
        gpus[kind] = max(gpus.get(kind, 0), count)
    return gpus


def parse_partitions(text: str) -> list[SlurmPartition]:
    """sinfo's ``--format=%P|%R|%l|%G|%a`` lines, merged per partition in sinfo's order."""
    merged: dict[str, SlurmPartition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5 or not fields[1]:
            continue
        marked, name, limit, gres, avail = fields
        try:
            max_time = parse_time_s(limit)
        except ValueError:
            max_time = None
        gpus = parse_gres(gres)
        known = merged.get(name)
        if known is not None:
            gpus = {k: max(v, gpus.get(k, 0)) for k, v in known.gpus.items()} | {
                k: v for k, v in gpus.items() if k not in known.gpus
            }
        merged[name] = SlurmPartition(
            name,
            marked.endswith("*"),
            max_time,
            gpus,
            avail.strip().lower() == "up" or bool(known and known.up),
        )
    return list(merged.values())


def parse_cluster_name(config_text: str) -> str | None:
    """ClusterName from ``scontrol show config``."""
    match = re.search(r"^ClusterName\s*=\s*(\S+)", config_text, re.MULTILINE)
    return match.group(1) if match else None


def parse_associations(text: str) -> list[Association]:
    """The association rows of ``sacctmgr -n -P show user U withassoc`` ACCOUNTS_FORMAT."""
    rows = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 7 or not fields[3]:
            continue
        cluster, account, partition, qos, default_qos = fields[2:7]
        rows.append(
            Association(cluster, account, partition, tuple(q for q in qos.split(",") if q), default_qos)
        )
    return rows


def parse_default_account(text: str) -> str | None:
    """The user's default account, from the same output."""
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) >= 2 and fields[1]:
            return fields[1]
    return None


def gpu_type_name(gres_type: str) -> str:
    """What users pass as --gpu for a gres type: ``h100`` -> ``H100``, ``a100_80g`` -> ``A100_80G``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", gres_type).upper()
