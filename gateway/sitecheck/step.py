"""One step of a site check and what it found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True)
class Step:
    key: str  # stable id: "yaml", "partition:h100", "probe:H100", ...
    title: str
    status: Status
    detail: str
    fix: str = ""  # on FAIL: what a site admin should do about it
