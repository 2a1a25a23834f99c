"""The monitor asks the backend once per round about every tracked job, whatever their number."""

import asyncio
from collections.abc import Sequence

import pytest

from gateway.core.errors import BackendError, TransportError
from gateway.core.states import JobState
from gateway.running.backends.base import JobHandle, JobStatus
from gateway.running.bundle import BundlePaths
from gateway.running.monitor import Monitor


class ScriptedBackend:
    name = "scripted"

    def __init__(self, finish_after_rounds: int, fail_rounds: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.finish_after = finish_after_rounds
        self.fail_rounds = fail_rounds

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        if self.fail_rounds > 0:
            self.fail_rounds -= 1
            raise TransportError("connection lost")
        self.calls.append([h.job_id for h in handles])
        done = len(self.calls) >= self.finish_after
        state = JobState.COMPLETED if done else JobState.RUNNING
        return {h.job_id: JobStatus(state) for h in handles}


def handle(i: int) -> JobHandle:
    return JobHandle(f"r{i}", str(i), BundlePaths.under("/w", f"r{i}"))


async def test_fifty_jobs_cost_one_query_per_round() -> None:
    backend = ScriptedBackend(finish_after_rounds=3)
    monitor = Monitor(backend, min_interval_s=0.01, max_interval_s=0.02)  # type: ignore[arg-type]
    finals = await asyncio.gather(*(monitor.wait(handle(i)) for i in range(50)))
    assert all(f.state is JobState.COMPLETED for f in finals)
    assert len(backend.calls) == 3
    assert all(len(call) == 50 for call in backend.calls)


async def test_state_changes_are_reported_once_each() -> None:
    backend = ScriptedBackend(finish_after_rounds=4)
    seen: list[JobState] = []

    async def on_change(_h: JobHandle, status: JobStatus) -> None:
        seen.append(status.state)

    monitor = Monitor(backend, min_interval_s=0.01, max_interval_s=0.02)  # type: ignore[arg-type]
    await monitor.wait(handle(1), on_change)
    assert seen == [JobState.RUNNING, JobState.COMPLETED]


async def test_transient_failures_are_retried() -> None:
    backend = ScriptedBackend(finish_after_rounds=1, fail_rounds=2)
    monitor = Monitor(backend, min_interval_s=0.01, max_interval_s=0.02)  # type: ignore[arg-type]
    final = await asyncio.wait_for(monitor.wait(handle(1)), 5)
    assert final.state is JobState.COMPLETED


class LostBackend:
    name = "lost"

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        if self.fail:
            raise TransportError("connection refused")
        return {h.job_id: JobStatus(JobState.UNKNOWN) for h in handles}


@pytest.mark.parametrize(("fail", "words"), [(False, "neither squeue nor sacct"), (True, "not answered")])
async def test_waiters_are_told_when_a_job_or_site_stays_lost(fail: bool, words: str) -> None:
    monitor = Monitor(LostBackend(fail), min_interval_s=0.01, max_interval_s=0.02, give_up_after_s=0.2)  # type: ignore[arg-type]
    with pytest.raises(BackendError, match=words):
        await asyncio.wait_for(monitor.wait(handle(1)), 5)
