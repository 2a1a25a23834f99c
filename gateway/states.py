"""Job states: every Slurm state mapped to one typed enum with a documented terminal set.

Unknown states are logged and reported as UNKNOWN, never guessed to be finished.
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger(__name__)


class JobState(enum.StrEnum):
    QUEUED = "QUEUED"  # accepted by the gateway, not yet handed to a backend
    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    SUSPENDED = "SUSPENDED"
    REQUEUED = "REQUEUED"
    RESIZING = "RESIZING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


# Once a job reaches one of these, Slurm never moves it again (REQUEUED is not terminal: it goes back
# to PENDING).
TERMINAL_STATES = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.PREEMPTED,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
    }
)

# What a user is told when a job ends in a state other than COMPLETED.
TERMINAL_MESSAGES = {
    JobState.FAILED: "the job failed on the cluster before the harness wrote a result",
    JobState.CANCELLED: "the job was cancelled",
    JobState.TIMEOUT: "the job hit the partition's time limit",
    JobState.OUT_OF_MEMORY: "the job ran out of memory",
    JobState.NODE_FAIL: "the compute node failed while the job ran",
    JobState.PREEMPTED: "the job was preempted by a higher-priority job",
    JobState.BOOT_FAIL: "the compute node failed to boot",
    JobState.DEADLINE: "the job missed its deadline",
}

_ALIASES = {"CA": JobState.CANCELLED, "OOM": JobState.OUT_OF_MEMORY}


def parse_slurm_state(raw: str) -> JobState:
    """Map a state as squeue/sacct print it ("CANCELLED by 1000", "RUNNING", "OOM") to a JobState."""
    word = raw.strip().split(" ", 1)[0].rstrip("+").upper()
    if word in _ALIASES:
        return _ALIASES[word]
    try:
        return JobState(word)
    except ValueError:
        log.warning("unknown Slurm job state %r: reported as UNKNOWN", raw)
        return JobState.UNKNOWN
