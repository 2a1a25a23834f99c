"""Claims against the real PostgreSQL: heartbeat refreshes only the worker's own unfinished runs and reports
cancel requests, release gives runs back at once, a stale claim is taken over, and a run is claimed by one
worker at a time. Claims take turns across users: one user's 500 queued runs do not hold back another's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.store import LeaderboardRecord, NewRun, Store
from tests.integration.scratch import claim, migrated_store, new_board, record, submit

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def store(dev_env: dict[str, str]) -> AsyncIterator[Store]:
    async with migrated_store(dev_env["GATEWAY_DATABASE_URL"], "test_claims") as (made, _):
        yield made


@pytest.fixture
async def empty(dev_env: dict[str, str]) -> AsyncIterator[Store]:
    """A store whose queue holds only what the test puts in it."""
    async with migrated_store(dev_env["GATEWAY_DATABASE_URL"], "test_claims_fair") as (made, _):
        yield made


async def test_heartbeat_holds_own_unfinished_runs_and_reports_cancels(store: Store) -> None:
    board = await new_board(store)
    sub = await submit(store, board, f"u-{uuid.uuid4().hex[:6]}")
    assert sub.secret is not None
    await claim(store, sub.public, sub.secret)  # as worker "test-worker"
    stranger = str(uuid.uuid4())
    # (runs lost to another worker, runs whose cancel was requested): none lost, an unknown id neither
    assert await store.heartbeat("test-worker", [sub.public, sub.secret, stranger]) == (set(), set())
    lost = {sub.public, sub.secret}
    assert await store.heartbeat("someone-else", [sub.public, sub.secret]) == (lost, set())

    assert await store.request_cancel(sub.secret) == "requested"
    assert await store.heartbeat("test-worker", [sub.public, sub.secret]) == (set(), {sub.secret})
    await record(store, sub.public, True, 1.0)  # a finished run is not lost
    assert await store.heartbeat("test-worker", [sub.public, sub.secret]) == (set(), {sub.secret})
    assert await store.heartbeat("test-worker", []) == (set(), set())


async def test_release_hands_runs_to_another_worker_at_once(store: Store) -> None:
    board = await new_board(store)
    sub = await submit(store, board, f"u-{uuid.uuid4().hex[:6]}")
    assert sub.secret is not None
    await claim(store, sub.public, sub.secret)
    assert await store.claim("other", 2, 60.0, [sub.public, sub.secret]) == []  # held
    await store.release("other", [sub.public])  # not theirs: nothing happens
    await store.release("test-worker", [sub.public])
    [taken] = await store.claim("other", 2, 60.0, [sub.public, sub.secret])
    assert taken.run_id == sub.public and taken.claims == 2 and taken.site == "alpha"
    assert await store.heartbeat("test-worker", [sub.public, sub.secret]) == ({sub.public}, set())


async def test_a_stale_claim_is_taken_over_and_one_worker_wins_a_race(store: Store) -> None:
    board = await new_board(store)
    sub = await submit(store, board, f"u-{uuid.uuid4().hex[:6]}", secret=False)
    await claim(store, sub.public)
    # stale after 1.5 s: a winner's fresh claim must not go stale while the other seven race (on two loaded
    # cores their statements can run a few hundred milliseconds apart)
    await asyncio.sleep(2.0)
    assert await store.claim("late", 1, 60.0, [sub.public]) == []  # fresh enough at 60 s
    claims = await asyncio.gather(*(store.claim(f"w{i}", 1, 1.5, [sub.public]) for i in range(8)))
    winners = [c for c in claims if c]
    assert len(winners) == 1 and winners[0][0].claims == 2
    assert await store.heartbeat("test-worker", [sub.public]) == ({sub.public}, set())  # lost its claim


# -- turns across users -------------------------------------------------------------------------------


async def queue(
    store: Store, board: LeaderboardRecord, who: str, runs: int, per_submission: int = 10
) -> list[str]:
    """``runs`` test runs of one user, queued in submissions of ``per_submission``, oldest first."""
    run_ids: list[str] = []
    while len(run_ids) < runs:
        batch = [str(uuid.uuid4()) for _ in range(min(per_submission, runs - len(run_ids)))]
        await store.create_submission(
            who,
            board.id,
            "t",
            "k.py",
            "x = 1\n",
            "test",
            [NewRun(r, "test", "H100", "00" * 32) for r in batch],
        )
        run_ids += batch
    return run_ids


async def claimed(store: Store, limit: int, worker: str = "w") -> list[str]:
    return [run.run_id for run in await store.claim(worker, limit, 60.0)]


async def test_one_run_of_a_second_user_is_not_held_back_by_500_of_the_first(empty: Store) -> None:
    board = await new_board(empty)
    a = await queue(empty, board, "ann", 500)
    [b] = await queue(empty, board, "bob", 1)
    # a claim of 16: ann's oldest (both are first in their user's queue; hers is older), bob's, then ann's
    assert await claimed(empty, 16) == [a[0], b, *a[1:15]]
    assert await empty.queue_position(a[15]) == 1
    await empty.release("w", [a[0], b, *a[1:15]])
    # claims of 1: bob's run comes before ann's second
    assert [*await claimed(empty, 1), *await claimed(empty, 1), *await claimed(empty, 1)] == [a[0], b, a[1]]


async def test_a_user_with_nothing_running_goes_next_in_a_claim_of_one(empty: Store) -> None:
    """The steady state: workers are busy with ann's runs when bob's one comes in."""
    board = await new_board(empty)
    a = await queue(empty, board, "ann", 500)
    assert await claimed(empty, 16) == a[:16]
    [b] = await queue(empty, board, "bob", 1)
    assert await empty.queue_position(b) == 1 and await empty.queue_position(a[16]) == 2
    assert await claimed(empty, 1) == [b]
    assert await claimed(empty, 1) == [a[16]]


async def test_users_take_turns_and_a_secret_rerun_is_its_users_run(empty: Store) -> None:
    board = await new_board(empty, gpus=("H100",))
    a = await queue(empty, board, "ann", 500)
    b = await queue(empty, board, "bob", 3, per_submission=1)
    c = await submit(empty, board, "cy")  # a public run and its secret rerun: two turns of cy's
    assert c.secret is not None
    assert await claimed(empty, 10) == [a[0], b[0], c.public, a[1], b[1], c.secret, a[2], b[2], a[3], a[4]]
    # ann's runs finish and a newcomer arrives mid-backlog: it goes next, and then alternates with ann's
    for run_id in a[:5]:
        await record(empty, run_id, True, 1.0)
    d = await queue(empty, board, "dee", 3, per_submission=1)
    assert await claimed(empty, 5) == [d[0], a[5], d[1], a[6], d[2]]


async def test_concurrent_claims_in_turns_never_take_the_same_run(empty: Store) -> None:
    board = await new_board(empty)
    runs = [*await queue(empty, board, "ann", 40), *await queue(empty, board, "bob", 20)]
    taken = await asyncio.gather(*(claimed(empty, 7, f"w{n}") for n in range(12)))
    flat = [run_id for batch in taken for run_id in batch]
    assert sorted(flat) == sorted(runs)  # 84 places, 60 runs: each claimed once, none left out
