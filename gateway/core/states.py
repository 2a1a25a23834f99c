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
    SIGNALING = "SIGNALING"
    STAGE_OUT = "STAGE_OUT"
    STOPPED = "STOPPED"
    REQUEUE_FED = "REQUEUE_FED"
    REQUEUE_HOLD = "REQUEUE_HOLD"  # requeued and held: waits for `scontrol release`
    SPECIAL_EXIT = "SPECIAL_EXIT"  # requeued in a held state after a special exit code
    RESV_DEL_HOLD = "RESV_DEL_HOLD"  # held because its reservation was deleted
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    REVOKED = "REVOKED"  # a federated sibling started elsewhere
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
        JobState.REVOKED,
    }
)

# Not terminal, but the job will not move without someone releasing it: users are told why it waits.
HELD_STATES = frozenset({JobState.REQUEUE_HOLD, JobState.SPECIAL_EXIT, JobState.RESV_DEL_HOLD})

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
    JobState.REVOKED: "the job was revoked (a federated copy of it ran on another cluster)",
}

# Slurm's pending reasons (squeue %r) in words a competitor understands; others are shown as Slurm says.
PENDING_REASONS = {
    "Priority": "waiting behind higher-priority jobs",
    "Resources": "waiting for a free GPU",
    "Dependency": "waiting for another job to finish",
    "BeginTime": "waiting for its start time",
    "JobHeldUser": "held by its owner",
    "JobHeldAdmin": "held by an administrator",
    "ReqNodeNotAvail": "the requested nodes are unavailable (drained, down or reserved)",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "PartitionNodeLimit": "the partition cannot give that many nodes",
    "PartitionTimeLimit": "the time limit is above the partition's",
    "NodeDown": "a node it needs is down",
    "BadConstraints": "no node satisfies its constraints",
    "Reservation": "waiting for its reservation",
    "QOSMaxJobsPerUserLimit": "the QOS limit of running jobs per user is reached",
    "QOSMaxGRESPerUser": "the QOS limit of GPUs per user is reached",
    "AssocMaxJobsLimit": "the account's limit of running jobs is reached",
    "AssocGrpGRES": "the account's GPU allocation is in use",
    "InvalidAccount": "the account is not valid for this user",
    "InvalidQOS": "the QOS is not valid for this user",
    "launch failed requeued held": "the launch failed; the job was requeued and held",
}


def describe_pending_reason(reason: str | None) -> str | None:
    """Slurm's reason with a plain explanation: ``Resources`` -> ``Resources: waiting for a free GPU``."""
    if not reason:
        return None
    plain = PENDING_REASONS.get(reason)
    return f"{reason}: {plain}" if plain else reason


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
