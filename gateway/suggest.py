"""'Did you mean ...' for a misspelt name (a site, a leaderboard, a GPU type, a task, a mode)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_to(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices that look like ``word`` (case aside), best first."""
    by_folded: dict[str, str] = {}
    for choice in choices:
        by_folded.setdefault(choice.lower(), choice)
    matches = difflib.get_close_matches(word.lower(), list(by_folded), n=n, cutoff=0.6)
    return [by_folded[match] for match in matches]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' when a choice looks like ``word``, else ''; to append to a message."""
    matches = close_to(word, choices)
    if not matches:
        return ""
    return f" (did you mean {' or '.join(matches)}?)"
