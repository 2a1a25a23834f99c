"""What a waiting run's state events say: the Slurm state, the pending reason in words, and the start
Slurm expects, in one message that people read and programs parse back (``parse_waiting``), so the CLI's
status line, the HTTP API's events and remote watchers all see the same thing from the run's events.

A run's events are rows; a new one is written only when something a watcher would see changes
(``worth_telling``): the state, the reason, or the expected start moving by at least a minute. Slurm's
backfill scheduler revises estimates on its own clock, and each revision must not become an event."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.core.states import JobState

EXPECTED = "; Slurm expects it to start at "
_MESSAGE = re.compile(
    r"(?P<state>[A-Z_]+)(?: \((?P<reason>.*?)\))?"
    r"(?:" + re.escape(EXPECTED) + r"(?P<start>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC)?"
)
ESTIMATE_MOVE_S = 60.0  # an estimate that moves less than this is not news


@dataclass(frozen=True)
class Waiting:
    """A state event read back: the state, why it waits (in words) and when Slurm expects it to start."""

    state: str
    reason: str | None = None
    start_at: datetime | None = None


def waiting_message(state: str, reason: str | None, start_at: float | None = None) -> str:
    """``PENDING (Resources: waiting for a free GPU); Slurm expects it to start at 2026-12-07 06:40:00
    UTC``; the reason and the estimate only when there are some."""
    message = state + (f" ({reason})" if reason else "")
    if start_at is not None:
        message += EXPECTED + datetime.fromtimestamp(start_at, UTC).strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    return message


def parse_waiting(message: str) -> Waiting | None:
    """The state, reason and estimate of a message ``waiting_message`` wrote; None for other messages."""
    match = _MESSAGE.fullmatch(message)
    if match is None or match["state"] not in JobState.__members__:
        return None
    start = match["start"]
    return Waiting(
        match["state"],
        match["reason"],
        datetime.strptime(start, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) if start else None,
    )


def worth_telling(
    told: tuple[str, str | None, float | None] | None, now: tuple[str, str | None, float | None]
) -> bool:
    """Whether (state, reason, expected start) differs enough from what was last told to be an event."""
    if told is None or told[:2] != now[:2]:
        return True
    before, after = told[2], now[2]
    if before is None or after is None:
        return before is not after
    return abs(after - before) >= ESTIMATE_MOVE_S
