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

# Every mode but the ranked one: what a site without isolation may be allowed to run (sites.py)
UnrankedMode = Literal["test", "benchmark", "profile"]
UNRANKED_MODES: tuple[UnrankedMode, ...] = get_args(UnrankedMode)
assert UNRANKED_MODES == tuple(m for m in MODES if m != "leaderboard"), "every mode but leaderboard"

# What each mode does, for a front end's help (the bot's /leaderboard submit, the API's form)
MODE_HELP: dict[Mode, str] = {
    "test": "correctness only",
    "benchmark": "timings",
    "leaderboard": "ranked",
    "profile": "a profile",
}
assert tuple(MODE_HELP) == MODES, "every mode has its help"


def modes_help() -> str:
    """One line naming each mode and what it does ("test: correctness only; benchmark: ...")."""
    return "; ".join(f"{mode}: {what}" for mode, what in MODE_HELP.items())


def as_mode(value: str) -> Mode:
    """A mode name, in any case, as the Mode literal; ValueError for anything else."""
    wanted = value.strip().lower()
    for mode in MODES:
        if wanted == mode:
            return mode
    raise ValueError(f"unknown mode {value!r}: expected one of {', '.join(MODES)}")
