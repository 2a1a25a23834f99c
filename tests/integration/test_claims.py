"""Claims against the real PostgreSQL: heartbeat refreshes only the worker's own unfinished runs and reports
cancel requests, release gives runs back at once, a stale claim is taken over, and a run is claimed by one
worker at a time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.store import Store
from tests.integration.scratch import claim, migrated_store, new_board, record, submit

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def store(dev_env: dict[str, str]) -> AsyncIterator[Store]:
    async with migrated_store(dev_env["GATEWAY_DATABASE_URL"], "test_claims") as (made, _):
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
    await asyncio.sleep(0.3)
    assert await store.claim("late", 1, 60.0, [sub.public]) == []  # fresh enough at 60 s
    claims = await asyncio.gather(*(store.claim(f"w{i}", 1, 0.2, [sub.public]) for i in range(8)))
    winners = [c for c in claims if c]
    assert len(winners) == 1 and winners[0][0].claims == 2
    assert await store.heartbeat("test-worker", [sub.public]) == ({sub.public}, set())  # lost its claim
