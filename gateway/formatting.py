"""Numbers as every front end shows them (CLI tables, Discord messages, web pages)."""

from __future__ import annotations


def format_seconds(seconds: float | None) -> str:
    """A duration with a unit that keeps three decimals readable: 1.234 s, 12.300 ms, 4.560 µs, 870.0 ns."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"
