"""What the Slurm commands print, parsed for SlurmBackend (gateway/running/backends/slurm.py): sbatch's job
id, squeue's and sacct's states, jobs found by name, the work folder's listing and the partitions' load.
Pure: the unit tests feed captured output."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gateway.core.errors import BackendError
from gateway.core.states import JobState, parse_slurm_state
from gateway.running.backends.base import JobStatus, PartitionLoad
from gateway.running.bundle import is_run_folder

log = logging.getLogger(__name__)


def parse_sbatch_parsable(stdout: str) -> str:
    """`sbatch --parsable` prints `jobid` or `jobid;cluster`."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";", 1)[0]
    if not job_id.isdigit():
        raise BackendError(f"sbatch printed no job id: {stdout.strip()[:200]!r}")
    return job_id


def parse_squeue(stdout: str) -> dict[str, JobStatus]:
    """Lines of `squeue -h -o %i|%T|%r|%S` with SLURM_TIME_FORMAT=%s: id, state, reason and, for a
    pending job, the start Slurm expects (epoch seconds; what `squeue --start` shows), when it has one."""
    states: dict[str, JobStatus] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) in (3, 4):
            reason = parts[2] if parts[2] not in ("", "None", "(null)") else None
            state = parse_slurm_state(parts[1])
            start = parse_start(parts[3]) if len(parts) == 4 and state is JobState.PENDING else None
            states[parts[0]] = JobStatus(state, reason, start)
    return states


def parse_start(field: str) -> float | None:
    """An expected start time as squeue prints it under SLURM_TIME_FORMAT=%s; None for N/A, Unknown or 0
    (the scheduler has not placed the job yet)."""
    return float(field) if field.isdigit() and int(field) > 0 else None


def parse_sacct(stdout: str) -> dict[str, JobStatus]:
    """Lines of `sacct -X -n -P -o JobIDRaw,State,ExitCode`."""
    states: dict[str, JobStatus] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3:
            states[parts[0]] = JobStatus(parse_slurm_state(parts[1]), f"exit code {parts[2]}")
    return states


def parse_named_jobs(stdout: str) -> dict[str, list[tuple[str, JobState]]]:
    """Lines of `<job id>|<job name>|<state>` (squeue or sacct): the jobs of each name, oldest first."""
    found: dict[str, list[tuple[str, JobState]]] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0].isdigit():
            found.setdefault(parts[1], []).append((parts[0], parse_slurm_state(parts[2])))
    for jobs in found.values():
        jobs.sort(key=lambda job: int(job[0]))
    return found


def parse_bundle_list(stdout: str) -> dict[str, float]:
    """Lines of `name|mtime` (find's `%f|%T@`): the folders named as run ids, with their last change."""
    found: dict[str, float] = {}
    for line in stdout.splitlines():
        name, _, when = line.strip().rpartition("|")
        if is_run_folder(name):
            try:
                found[name] = float(when)
            except ValueError:
                log.warning("unreadable line in a work folder's listing: %r", line[:200])
    return found


def parse_load(sinfo: str, squeue: str, partitions: Sequence[str]) -> dict[str, PartitionLoad]:
    """`sinfo -h -o %R|%a|%t` (partition, availability, node state per line) and `squeue -h -o %P|%T`."""
    usable: dict[str, bool] = {}
    words: dict[str, list[str]] = {}
    for line in sinfo.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            name, avail, node_state = parts[0].rstrip("*"), parts[1], parts[2]
            words.setdefault(name, []).append(node_state)
            ok = avail == "up" and node_state.rstrip("*~#!%$@^-") in ("idle", "mix", "alloc", "comp")
            usable[name] = usable.get(name, False) or ok
    counts: dict[str, list[int]] = {name: [0, 0] for name in partitions}
    for line in squeue.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 2:
            for name in parts[0].split(","):  # a job may name several partitions
                if name in counts:
                    counts[name][0 if parts[1] == "PENDING" else 1] += 1
    return {
        name: PartitionLoad(
            name,
            usable.get(name, False),
            counts[name][0],
            counts[name][1],
            ",".join(sorted(set(words.get(name, ["missing"])))),
        )
        for name in partitions
    }
