"""'Did you mean ...' for a misspelt name (a site, a leaderboard, a GPU type, a task, a mode)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# GPU type names differ in one character (A100, H100, H200): a suggestion needs more alike than a name.
GPU_CUTOFF = 0.8


def close_to(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The choices that look like ``word`` (case aside), best first."""
    by_folded: dict[str, str] = {}
    for choice in choices:
        by_folded.setdefault(choice.lower(), choice)
    matches = difflib.get_close_matches(word.lower(), list(by_folded), n=n, cutoff=cutoff)
    return [by_folded[match] for match in matches]


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """' (did you mean X?)' when a choice looks like ``word``, else ''; to append to a message."""
    matches = close_to(word, choices, cutoff=cutoff)
    if not matches:
        return ""
    return f" (did you mean {' or '.join(matches)}?)"
