"""``#!POPCORN`` lines: the leaderboard and GPU a submission file names for itself, as popcorn-cli and
the GPU MODE bot read them, so a file written for them submits here the same way.

Only the file's first comment block counts: the lines at its top that start with ``#`` or ``//`` (a
shebang included); the first other line ends it. A directive is such a line whose first word is exactly
``#!POPCORN`` or ``//!POPCORN``; its keyword is case-insensitive: ``leaderboard NAME``, or ``gpu TYPE``
(``gpus`` too, as popcorn-cli accepts it; the gateway runs one GPU type per submission). Flags given on
the command line win over directives. Anything else that starts with the marker is a UserError saying
what to write instead: a typo must not silently submit to the wrong board."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.errors import UserError

MARKERS = ("#!POPCORN", "//!POPCORN")
EXAMPLE = "write `#!POPCORN leaderboard NAME` or `#!POPCORN gpu TYPE`"


@dataclass(frozen=True)
class Directives:
    leaderboard: str | None = None
    gpu: str | None = None


def parse_directives(code: str, file_name: str = "the submission") -> Directives:
    """The ``#!POPCORN`` directives at the top of ``code``; UserError (naming the file and line) for a
    malformed one."""
    found: dict[str, str] = {}
    for number, line in enumerate(code.splitlines(), start=1):
        if not line.startswith(("#", "//")):
            break  # the first comment block ends here
        words = line.split()
        if not words or words[0] not in MARKERS:
            continue
        where = f"{file_name}, line {number}"
        if len(words) < 2:
            raise UserError(f"{where}: {words[0]} without a keyword: {EXAMPLE}")
        keyword = words[1].lower()
        key = {"leaderboard": "leaderboard", "gpu": "gpu", "gpus": "gpu"}.get(keyword)
        if key is None:
            raise UserError(f"{where}: unknown directive {words[1]!r}: {EXAMPLE}")
        values = words[2:]
        if not values:
            raise UserError(f"{where}: `{words[0]} {words[1]}` names no {_what(key)}: {EXAMPLE}")
        if len(values) > 1:
            many = "GPU types (a submission runs on one: name one)" if key == "gpu" else "names"
            raise UserError(f"{where}: `{words[0]} {words[1]}` gives several {many}: {' '.join(values)}")
        if key in found and found[key] != values[0]:
            raise UserError(
                f"{where}: a second {_what(key)} ({values[0]}) after {found[key]}: keep one directive"
            )
        found[key] = values[0]
    return Directives(found.get("leaderboard"), found.get("gpu"))


def _what(key: str) -> str:
    return "leaderboard" if key == "leaderboard" else "GPU type"
