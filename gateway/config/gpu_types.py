"""GPU type names and their vendors. A site's partitions name their GPU type (``H100``, ``MI300X``); KernelBot
and reference-kernels name *runners* that may carry a GPU count (``MI300x8``: one node of 8 MI300X). Such a
name reads here as its GPU type and the count a run may use: ``MI300x8`` is ``MI300X`` with 8 GPUs, while
``H100`` or ``MI300`` are themselves, with one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Vendor = Literal["nvidia", "amd"]
# AMD Instinct (MI100, MI210, MI250(X), MI300A/X, MI325X, MI355X) and Radeon (W7900, RX 7900 XTX) names
_AMD = re.compile(r"^(MI\d{3}[A-Z]?|W\d{4}|RX[_-]?\d{4}.*)$", re.IGNORECASE)
# a runner name with a count: MI300x8 (KernelBot), H100x8; the type keeps an X of its own (MI300X x 8)
_WITH_COUNT = re.compile(r"^(?P<type>[A-Za-z][A-Za-z0-9_.-]*?)[xX](?P<count>[1-9]\d?)$")


@dataclass(frozen=True)
class RunnerName:
    """A runner's name read as a GPU type and how many of it one node gives a run."""

    gpu_type: str
    count: int


def read_runner_name(name: str) -> RunnerName:
    """``MI300x8`` -> MI300X x 8; ``H100x2`` -> H100 x 2; ``MI300X``, ``H100``, ``A100_80G`` -> itself x 1.

    An AMD Instinct name with a count gets its X (KernelBot's MI300x8 runs on MI300X nodes); a name with no
    trailing x<digits> is a plain GPU type."""
    found = _WITH_COUNT.match(name)
    if found is None:
        return RunnerName(name, 1)
    gpu_type, count = found.group("type"), int(found.group("count"))
    if re.fullmatch(r"MI\d{3}", gpu_type, re.IGNORECASE):
        gpu_type += "X"
    return RunnerName(gpu_type.upper() if gpu_type[:2].upper() == "MI" else gpu_type, count)


def vendor_of(gpu_type: str | None) -> Vendor | None:
    """Who makes ``gpu_type``: amd for Instinct and Radeon names, nvidia for the others, None for none."""
    if not gpu_type:
        return None
    return "amd" if _AMD.match(read_runner_name(gpu_type).gpu_type) else "nvidia"
