"""The queue's contracts against the real PostgreSQL and Slurm: SKIP LOCKED claims never overlap, a
follower hears every event through LISTEN/NOTIFY, a cancel reaches the worker that runs the job, and a
worker that stops cleanly hands its runs over."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest

from gateway.config.settings import Settings
from gateway.config.tasks import load_task
from gateway.service.facade import OPERATOR, Gateway, as_mode
from gateway.service.model import SubmitRequest
from gateway.store import NewRun
from tests.conftest import PROBLEMS, solution

pytestmark = pytest.mark.integration


def vectoradd(board: str, mode: str = "test", user: str = "queue") -> SubmitRequest:
    return SubmitRequest(
        code=solution("vectoradd", "correct.py"),
        file_name="correct.py",
        user=user,
        task=load_task(PROBLEMS / "vectoradd"),
        leaderboard=board,
        site="alpha",
        gpu_type="H100",
        mode=as_mode(mode),
        admin=True,
    )


async def test_concurrent_claims_never_take_the_same_run(gateway: Gateway) -> None:
    store = gateway.store
    assert store is not None
    task = load_task(PROBLEMS / "vectoradd")
    board = await gateway.boards.create_leaderboard(f"q-{uuid.uuid4().hex[:8]}", task, caller=OPERATOR)
    run_ids = [str(uuid.uuid4()) for _ in range(60)]
    await store.create_submission(
        "claims",
        board.id,
        task.name,
        "k.py",
        "x = 1\n",
        "test",
        [NewRun(r, "test", "H100", "00" * 32) for r in run_ids],
    )
    claims = await asyncio.gather(*(store.claim(f"w{n}", 7, 60.0, run_ids) for n in range(12)))
    taken = Counter(run.run_id for claimed in claims for run in claimed)
    assert sorted(taken) == sorted(run_ids) and set(taken.values()) == {1}
    assert not await store.claim("late", 10, 60.0, run_ids), "fresh claims are not taken over"
    await asyncio.sleep(1.2)
    again = await store.claim("taker", 100, 1.0, run_ids)  # all stale after 1 s
    assert {run.run_id for run in again} == set(run_ids) and {run.claims for run in again} == {2}
    await asyncio.gather(*(store.request_cancel(r) for r in run_ids))  # leave nothing queued


async def test_a_follower_hears_every_event_as_it_happens(stack_settings: Settings, gateway: Gateway) -> None:
    submission = await gateway.enqueue(vectoradd(f"q-{uuid.uuid4().hex[:8]}"))
    heard: list[tuple[float, str, str]] = []

    async def follow() -> None:
        async for event in gateway.follow(submission.run_ids):
            heard.append((time.monotonic(), event.kind, event.message))

    follower = asyncio.create_task(follow())
    other = await Gateway.open(stack_settings)  # a worker in another gateway (as another process would be)
    try:
        reports = await other.worker().drain(submission.run_ids)
    finally:
        await other.close()
    await asyncio.wait_for(follower, 10)
    [report] = reports.values()
    assert report.passed, report.error
    kinds = [kind for _, kind, _ in heard]
    assert kinds[0] == "state" and heard[0][2] == "queued"
    assert "progress" in kinds and kinds[-1] == "finished" and kinds.count("finished") == 1
    assert any(message.startswith("submitted as job") for _, _, message in heard)
    assert heard[-1][2] == "passed"


async def test_cancel_reaches_the_worker_running_the_job(stack_settings: Settings, gateway: Gateway) -> None:
    store = gateway.store
    assert store is not None
    submission = await gateway.enqueue(vectoradd(f"q-{uuid.uuid4().hex[:8]}", mode="benchmark"))
    [run_id] = submission.run_ids
    other = await Gateway.open(stack_settings)
    worker = other.worker()
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + 60
        while (record := await store.get_run(run_id)) is None or record.job_id is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        message = await gateway.cancel_run(run_id[:8], caller=OPERATOR)
        assert "cancel requested" in message
        while (record := await store.get_run(run_id)) is None or record.finished_at is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert record.state == "CANCELLED" and record.error == "cancelled: cancelled on request"
    finally:
        stop.set()
        await running
        await other.close()
    backend = gateway.sites.backend_for("alpha")
    assert record.job_id is not None
    from gateway.running.backends.base import JobHandle
    from gateway.running.bundle import BundlePaths

    status = await backend.status([JobHandle(run_id, record.job_id, BundlePaths.under("/", run_id))])
    assert status[record.job_id].state.value == "CANCELLED", "the Slurm job itself was cancelled"


async def test_a_worker_stopped_cleanly_hands_its_runs_over_at_once(
    stack_settings: Settings, gateway: Gateway
) -> None:
    store = gateway.store
    assert store is not None
    submission = await gateway.enqueue(vectoradd(f"q-{uuid.uuid4().hex[:8]}", mode="benchmark"))
    [run_id] = submission.run_ids
    first = await Gateway.open(stack_settings)
    stop = asyncio.Event()
    running = asyncio.create_task(first.worker(name="first").run(stop))
    deadline = time.monotonic() + 60
    while (record := await store.get_run(run_id)) is None or record.job_id is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    stop.set()
    await running
    await first.close()
    released = await store.get_run(run_id)
    assert released is not None and released.worker is None and released.finished_at is None
    second = await Gateway.open(stack_settings)
    try:
        reports = await asyncio.wait_for(second.worker(name="second").drain([run_id]), 120)
    finally:
        await second.close()
    assert reports[run_id].passed, reports[run_id].error
    done = await store.get_run(run_id)
    assert done is not None and done.claims == 2 and done.job_id == record.job_id, (
        "re-attached, not resubmitted"
    )
