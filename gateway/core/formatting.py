"""Numbers as every front end shows them (CLI tables, Discord messages, web pages)."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.core.errors import UserError
from gateway.core.validation import shown


def format_seconds(seconds: float | None) -> str:
    """A duration with a unit that keeps three decimals readable: 1.234 s, 12.300 ms, 4.560 µs, 870.0 ns."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"


DEADLINE_HELP = "ISO 8601, e.g. 2026-12-31T23:59Z or '2026-12-31 23:59+02:00' (no zone: UTC)"


def parse_deadline(text: str) -> datetime:
    """An ISO 8601 date or date and time; without a zone it is UTC. UserError otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"{shown(text)} is not a date and time: {DEADLINE_HELP}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    """A window as people say it: whole days, hours or minutes when it is one, else seconds."""
    seconds = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
