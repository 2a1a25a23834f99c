"""Static pre-checks of a submission's source: they flag code worth a human look, they decide nothing.

The runtime defences carry the weight (a separate trusted evaluator, fresh inputs, checked outputs, bound
timers, authenticated results); a flag here is recorded in result.json's ``warnings`` for reviewers.
"""

from __future__ import annotations

import re
from pathlib import Path

# (pattern, why it is suspicious in a kernel submission)
SUSPICIOUS = [
    (r"POPCORN_|HARNESS_|result\.json|/proc/", "touches the harness's channels or files"),
    (r"\bgc\.get_(objects|referrers)|sys\._getframe|inspect\.(stack|currentframe)", "inspects other frames"),
    (r"\bsys\.modules\b", "reaches into loaded modules"),
    (r"perf_counter|time_ns|\belapsed_time\b|\bEvent\b.*=|statistics\.", "touches timers or statistics"),
    (r"\bos\._exit\b|\bos\.kill\b|signal\.", "ends or signals processes"),
    (r"\bctypes\b|\bptrace\b", "uses ctypes/ptrace"),
    (r"data_ptr\(\)|\bid\(", "keys something on an object id or pointer (output caching?)"),
    (r"\bthreading\b|\bmultiprocessing\b|concurrent\.futures", "starts threads or processes"),
]


def scan_submission(path: Path, shown_name: str | None = None) -> list[str]:
    """The flags of the file at ``path``, each with its line, naming the file ``shown_name`` (the name its
    author gave it) or its own name."""
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    warnings = []
    for pattern, why in SUSPICIOUS:
        match = re.search(pattern, source)
        if match:
            line = source.count("\n", 0, match.start()) + 1
            warnings.append(f"{shown_name or path.name}:{line}: {match.group(0)!r} {why}")
    return warnings
