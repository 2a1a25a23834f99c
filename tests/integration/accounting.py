"""sacct as the tests read it: the gateway holds a pushed result before Slurm has recorded the job's end,
so a test that checks accounting waits until the job's State there is terminal."""

from __future__ import annotations

import asyncio
import time

from gateway.core.states import JobState, parse_slurm_state
from gateway.running.transport.ssh import SSHTransport


async def finished_jobs(
    ssh: SSHTransport, fields: list[str], match: str, timeout_s: float = 15.0, *, first_field: bool = False
) -> list[list[str]]:
    """Today's jobs (fields + State, `|`-split) whose line contains ``match`` (or, with ``first_field``,
    whose first field is ``match``), once all have ended."""
    since = time.strftime("%Y-%m-%dT00:00:00")
    deadline = time.monotonic() + timeout_s
    while True:
        done = await ssh.run(["sacct", "-X", "-n", "-P", "-S", since, "-o", ",".join([*fields, "State"])])
        rows = [line.split("|") for line in done.stdout.splitlines() if match in line]
        if first_field:
            rows = [row for row in rows if row[0] == match]
        if rows and all(parse_slurm_state(row[-1]) in _ENDED for row in rows):
            return rows
        if time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


_ENDED = {state for state in JobState if state.is_terminal}
