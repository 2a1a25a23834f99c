"""What a Slurm cluster says about itself, for zero-config discovery (gateway/config/discovery.py): the
commands that ask (sinfo's partitions, scontrol's cluster name, sacctmgr's associations) and their output
parsed. Pure: the unit tests feed output captured on the dev stack's clusters."""

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
    """A Slurm time as sinfo and scontrol print it, in seconds: ``minutes``, ``M:S``, ``H:M:S``, ``D-H``,
    ``D-H:M``, ``D-H:M:S`` ("10:00" is 10 minutes, "2-3" two days and 3 hours); None for
    "infinite"/"UNLIMITED"; a ValueError for anything else."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited"):
        return None
    day, has_day, clock = text.rpartition("-")
    parts = clock.split(":")
    if (has_day and not day.isdigit()) or not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        raise ValueError(f"not a Slurm time: {text!r}")
    numbers = [int(p) for p in parts]
    if has_day:
        hours, minutes, seconds = [*numbers, 0, 0][:3]
    elif len(numbers) == 1:
        hours, minutes, seconds = 0, numbers[0], 0
    elif len(numbers) == 2:
        hours, minutes, seconds = 0, numbers[0], numbers[1]
    else:
        hours, minutes, seconds = numbers
    return (((int(day) if has_day else 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def format_time(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass(frozen=True)
class GresItem:
    """One item of a gres string: ``gpu:h100:4(S:0-1)`` is name gpu, type h100, count 4."""

    name: str
    type: str  # UNTYPED when the item names none (``gpu:2``, ``gpu``)
    count: int


def parse_gres_items(text: str) -> list[GresItem]:
    """The items of a gres string (``gpu:h100:4(S:0-1),gpu:l4:1``, ``gpu:2``, ``mps:400``, ``(null)``),
    socket bindings dropped; an item is ``name``, ``name:count``, ``name:type`` or ``name:type:count``."""
    items = []
    for item in re.sub(r"\([^)]*\)", "", text).split(","):
        parts = item.strip().split(":")
        if not parts[0]:
            continue
        count_text = parts[-1] if len(parts) > 1 else "1"
        if len(parts) == 2 and not count_text.isdigit():
            kind, count = parts[1], 1  # gpu:h100
        else:
            kind = ":".join(parts[1:-1]) if len(parts) > 2 else UNTYPED
            count = int(count_text) if count_text.isdigit() else 1
        items.append(GresItem(parts[0], kind, count))
    return items


def parse_gres(text: str) -> dict[str, int]:
    """GPUs in a gres string (``gpu:h100:4(S:0-1),gpu:l4:1``, ``gpu:2``, ``(null)``): type -> count."""
    gpus: dict[str, int] = {}
    for item in parse_gres_items(text):
        if item.name == "gpu":
            gpus[item.type] = max(gpus.get(item.type, 0), item.count)
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


def scale_gres(gres: str | None, gpus: int) -> str | None:
    """A partition's job gres asking for ``gpus`` GPUs instead: ``gpu:h100:1`` -> ``gpu:h100:4``, ``gpu`` ->
    ``gpu:4``; items other than gpu are kept. None (no gres) stays None for one GPU, ``gpu:N`` for more."""
    if gres is None:
        return None if gpus == 1 else f"gpu:{gpus}"
    items = parse_gres_items(gres)
    if not any(item.name == "gpu" for item in items):
        return gres if gpus == 1 else ",".join([gres, f"gpu:{gpus}"])
    return ",".join(
        ":".join(
            [item.name, *([item.type] if item.type else []), str(gpus if item.name == "gpu" else item.count)]
        )
        for item in items
    )
