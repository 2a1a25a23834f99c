"""The run modes, one list for every front end (CLI, API, bot) and the processing code.

The wire values (the API's ``mode``, the spec the harness reads, the database) are the lower-case names.
"""

from __future__ import annotations

import enum
from typing import Literal, get_args

Mode = Literal["test", "benchmark", "leaderboard", "profile"]


class RunMode(enum.StrEnum):
    """What a run does: the tests only, the benchmarks, a ranked (leaderboard) run, or a profile."""

    TEST = "test"
    BENCHMARK = "benchmark"
    LEADERBOARD = "leaderboard"
    PROFILE = "profile"


MODES: tuple[Mode, ...] = get_args(Mode)
assert MODES == tuple(RunMode), "Mode and RunMode list the same modes"


def as_mode(value: str) -> Mode:
    """A mode name, in any case, as the Mode literal; ValueError for anything else."""
    wanted = value.strip().lower()
    for mode in MODES:
        if wanted == mode:
            return mode
    raise ValueError(f"unknown mode {value!r}: expected one of {', '.join(MODES)}")
