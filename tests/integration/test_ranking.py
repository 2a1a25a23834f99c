"""Ranking against the real PostgreSQL: each user's best passing public score per GPU type, counted only
when its secret rerun passed too, whatever order (or concurrency) the two finish in; ties go to the
earlier submission; and each user's own history, newest first.

Rows are made through the store's own API (create_submission, claim, record_result) in a scratch database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from gateway.store import RankedEntry, Store
from tests.integration.scratch import (
    WORKER,
    claim,
    finish,
    finish_submission,
    migrated_store,
    new_board,
    record,
    submit,
)

pytestmark = pytest.mark.integration
ORDERS = ["public-first", "secret-first", "concurrently"]


@pytest.fixture(scope="module")
async def db(dev_env: dict[str, str]) -> AsyncIterator[tuple[Store, str]]:
    async with migrated_store(dev_env["GATEWAY_DATABASE_URL"], "test_ranking") as made:
        yield made


@pytest.fixture
def store(db: tuple[Store, str]) -> Store:
    return db[0]


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def table(entries: list[RankedEntry]) -> list[tuple[int, str, float]]:
    return [(e.rank, e.user_name, e.score) for e in entries]


async def test_each_user_counts_once_with_their_best_passing_public_score(store: Store) -> None:
    board = await new_board(store)
    ann, bob, cid, dan = user(), user(), user(), user()
    ann_subs = [await submit(store, board, ann) for _ in range(3)]
    for sub, score in zip(ann_subs, [3.0, 1.0, 2.0], strict=True):
        await finish_submission(store, sub, score)
    await finish_submission(store, await submit(store, board, bob), 1.5)
    # cid's fastest public run passed but its secret rerun failed: it does not count; their slower one does
    await finish_submission(store, await submit(store, board, cid), 0.5, secret_passed=False)
    await finish_submission(store, await submit(store, board, cid), 2.5)
    # dan's runs failed (public) or are still queued: dan is not ranked at all
    await finish_submission(store, await submit(store, board, dan), 0.1, public_passed=False)
    await submit(store, board, dan)

    ranking = await store.ranking(board.id, "H100")
    assert table(ranking) == [(1, ann, 1.0), (2, bob, 1.5), (3, cid, 2.5)]
    best = ranking[0]
    assert best.run_id == ann_subs[1].public and best.file_name == ann_subs[1].file_name
    assert best.gpu_type == "H100" and best.site == "alpha"
    run = await store.get_run(ann_subs[1].public)
    assert run is not None and run.ranked and best.submitted_at == run.queued_at
    # the secret rerun itself is never an entry, and is never marked ranked
    secret = await store.get_run(ann_subs[1].secret or "")
    assert secret is not None and secret.passed and not secret.ranked


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("public_passed", "secret_passed", "ranked"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
async def test_a_public_run_ranks_only_when_its_secret_rerun_passed_in_any_order(
    store: Store, order: str, public_passed: bool, secret_passed: bool, ranked: bool
) -> None:
    board = await new_board(store)
    who = user()
    sub = await submit(store, board, who)
    await finish_submission(
        store, sub, 1.0, public_passed=public_passed, secret_passed=secret_passed, order=order
    )
    run = await store.get_run(sub.public)
    assert run is not None and run.passed is public_passed and run.ranked is ranked
    assert table(await store.ranking(board.id, "H100")) == ([(1, who, 1.0)] if ranked else [])


async def test_many_public_runs_and_reruns_finishing_at_once_rank_exactly_those_both_passed(
    store: Store,
) -> None:
    """Every submission's two runs are recorded at the same moment on different connections, 40
    submissions at a time: the recorders of a run and its rerun see each other whoever commits first."""
    board = await new_board(store)
    users = [user() for _ in range(40)]
    subs = [await submit(store, board, who) for who in users]
    verdicts = [(i % 4 != 3, i % 5 != 4) for i in range(len(subs))]  # a mix of public and secret failures
    await asyncio.gather(
        *(
            finish_submission(store, sub, 1.0 + i, public_passed=p, secret_passed=s, order="concurrently")
            for i, (sub, (p, s)) in enumerate(zip(subs, verdicts, strict=True))
        )
    )
    expected = [users[i] for i, (p, s) in enumerate(verdicts) if p and s]
    assert [e.user_name for e in await store.ranking(board.id, "H100")] == expected
    for sub, (p, s) in zip(subs, verdicts, strict=True):
        run = await store.get_run(sub.public)
        assert run is not None and run.ranked is (p and s)


async def test_equal_scores_go_to_the_earlier_submission(store: Store) -> None:
    board = await new_board(store)
    early, late = user(), user()
    early_sub = await submit(store, board, early)
    late_sub = await submit(store, board, late)
    again = await submit(store, board, early)  # early ties with themself later: the first one stands
    # recorded in the opposite order of submission: the time that counts is the submission's
    await finish_submission(store, again, 2.0)
    await finish_submission(store, late_sub, 2.0)
    await finish_submission(store, early_sub, 2.0)

    ranking = await store.ranking(board.id, "H100")
    assert table(ranking) == [(1, early, 2.0), (2, late, 2.0)]
    assert ranking[0].run_id == early_sub.public
    assert ranking[0].submitted_at < ranking[1].submitted_at


async def test_each_gpu_type_is_ranked_separately(store: Store) -> None:
    board = await new_board(store, ("H100", "A100"))
    fast_on_h100, fast_on_a100 = user(), user()
    await finish_submission(store, await submit(store, board, fast_on_h100, gpu="H100"), 1.0)
    await finish_submission(store, await submit(store, board, fast_on_h100, gpu="A100"), 9.0)
    await finish_submission(store, await submit(store, board, fast_on_a100, gpu="A100"), 3.0)
    await finish_submission(store, await submit(store, board, fast_on_a100, gpu="H100"), 4.0)
    # an H100 run whose A100 rerun passed does not count: the rerun must be on the same GPU type
    odd = await submit(store, board, user(), gpu="H100")
    other = await submit(store, board, user(), gpu="A100")
    await finish(store, odd.public, True, 0.5)
    await finish(store, other.secret or "", True, 0.5)
    await finish(store, odd.secret or "", False)

    assert table(await store.ranking(board.id, "H100")) == [(1, fast_on_h100, 1.0), (2, fast_on_a100, 4.0)]
    assert table(await store.ranking(board.id, "A100")) == [(1, fast_on_a100, 3.0), (2, fast_on_h100, 9.0)]
    assert await store.ranking(board.id, "L4") == []


async def test_only_leaderboard_mode_runs_of_that_leaderboard_rank(store: Store) -> None:
    board, elsewhere = await new_board(store), await new_board(store)
    who = user()
    for mode in ("test", "benchmark", "profile"):
        await finish(store, (await submit(store, board, who, mode=mode, secret=False)).public, True, 0.1)
    no_rerun = await submit(store, board, who, secret=False)  # leaderboard mode without a secret rerun
    await finish(store, no_rerun.public, True, 0.2)
    await finish_submission(store, await submit(store, elsewhere, who), 0.3)
    assert await store.ranking(board.id, "H100") == []
    assert table(await store.ranking(elsewhere.id, "H100")) == [(1, who, 0.3)]


async def test_cancelled_and_twice_recorded_runs(store: Store) -> None:
    board = await new_board(store)
    who = user()
    sub = await submit(store, board, who)
    assert await store.request_cancel(sub.public) == "queued"
    await finish(store, sub.secret or "", True, 1.0)
    assert await store.ranking(board.id, "H100") == []

    ranked = await submit(store, board, who)
    await finish_submission(store, ranked, 2.0)
    # a late second record (a worker that lost its claim) changes nothing
    again = await store.record_result(
        ranked.secret or "",
        state="FAILED",
        passed=False,
        score=None,
        result=None,
        system_info=None,
        error="late",
        message="late",
    )
    assert again is False
    assert table(await store.ranking(board.id, "H100")) == [(1, who, 2.0)]


async def test_the_ranking_is_cut_at_its_limit(store: Store) -> None:
    board = await new_board(store)
    users = [user() for _ in range(5)]
    for i, who in enumerate(users):
        await finish_submission(store, await submit(store, board, who), 5.0 - i)
    top = await store.ranking(board.id, "H100", limit=3)
    assert [e.user_name for e in top] == users[::-1][:3]
    assert [e.rank for e in top] == [1, 2, 3]


async def test_history_shows_a_users_own_runs_newest_first(store: Store) -> None:
    board, elsewhere = await new_board(store), await new_board(store)
    me, someone = user(), user()
    first = await submit(store, board, me)
    await finish_submission(store, first, 3.0, secret_passed=False)
    await submit(store, board, someone)
    second = await submit(store, elsewhere, me, mode="test", secret=False)
    third = await submit(store, board, me)
    await finish_submission(store, third, 2.0)
    adhoc = await submit(store, None, me, mode="test", secret=False)

    history = await store.history(me)
    assert [r.run_id for r in history] == [
        adhoc.public,
        third.public,
        third.secret,
        second.public,
        first.public,
        first.secret,
    ]
    assert all(r.user_name == me for r in history)
    assert [r.queued_at for r in history] == sorted((r.queued_at for r in history), reverse=True)
    by_id = {r.run_id: r for r in history}
    assert by_id[third.public].ranked and by_id[third.public].score == 2.0
    assert not by_id[first.public].ranked and by_id[first.public].passed
    assert by_id[first.secret or ""].passed is False and by_id[first.secret or ""].secret
    assert by_id[adhoc.public].leaderboard is None and by_id[adhoc.public].state == "QUEUED"

    on_board = await store.history(me, board.id)
    assert [r.run_id for r in on_board] == [third.public, third.secret, first.public, first.secret]
    assert [r.run_id for r in await store.history(me, board.id, limit=1)] == [third.public]
    assert await store.history(f"nobody-{uuid.uuid4().hex[:6]}") == []


async def test_recording_survives_a_deadlock_with_another_transaction(db: tuple[Store, str]) -> None:
    """record_result locks a submission's runs in id order; a transaction that locks them the other way
    round (a heartbeat whose plan scans the heap) deadlocks with it. PostgreSQL aborts one of the two, and
    an aborted record_result is run again rather than losing the run's result."""
    store, dsn = db
    board = await new_board(store)
    sub = await submit(store, board, user())
    assert sub.secret is not None
    low, high = sorted([sub.public, sub.secret], key=uuid.UUID)
    claimed = await store.claim(WORKER, 2, 60.0, [low, high])
    assert {c.run_id for c in claimed} == {low, high}

    other = await asyncpg.connect(dsn)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", uuid.UUID(high))
        recording: asyncio.Future[bool] = asyncio.ensure_future(
            store.record_result(
                low,
                state="COMPLETED",
                passed=True,
                score=1.0,
                result=None,
                system_info=None,
                error=None,
                message="passed",
            )
        )
        await asyncio.sleep(0.3)  # record_result now holds `low` and waits for `high`
        assert not recording.done()
        try:
            await other.execute("UPDATE runs SET heartbeat_at = now() WHERE id = $1", uuid.UUID(low))
        except asyncpg.exceptions.DeadlockDetectedError:
            await transaction.rollback()
        else:
            await transaction.commit()
        assert await asyncio.wait_for(recording, 30) is True
    finally:
        await other.close()
    run = await store.get_run(low)
    assert run is not None and run.passed and run.finished_at is not None


async def test_at_its_deadline_a_boards_ranking_freezes_and_a_late_run_finishes_unranked(
    store: Store,
) -> None:
    """A run submitted before the deadline whose result is recorded after it is shown to its owner with
    its score, and marked late; the ranking stays the one at the deadline (queue.py: record_result)."""
    board = await new_board(store, deadline=datetime.now(UTC) + timedelta(hours=1))
    early, late = user(), user()
    await finish_submission(store, await submit(store, board, early), 2.0)
    late_sub = await submit(store, board, late)  # submitted in time ...
    await claim(store, late_sub.public, late_sub.secret or "")
    assert await store.set_deadline(board.name, datetime.now(UTC) - timedelta(seconds=1))
    await record(store, late_sub.public, True, 1.0)  # ... faster, but recorded after the deadline
    await record(store, late_sub.secret or "", True, 1.0)
    run = await store.get_run(late_sub.public)
    assert run is not None and run.passed and run.score == 1.0 and run.late and not run.ranked
    assert table(await store.ranking(board.id, "H100")) == [(1, early, 2.0)]


async def test_a_deleted_submission_leaves_the_ranking_and_its_queued_runs_are_cancelled(
    store: Store,
) -> None:
    board = await new_board(store)
    who = user()
    ranked = await submit(store, board, who)
    await finish_submission(store, ranked, 1.0)
    queued = await submit(store, board, who)
    assert table(await store.ranking(board.id, "H100")) == [(1, who, 1.0)]
    ranked_id = (await store.submission_runs(ranked.submission_id))[0].public_id
    done = await store.delete_submission(ranked_id, who)
    assert done is not None and (done.unranked, done.cancelled, done.cancel_requested) == (1, 0, 0)
    assert await store.ranking(board.id, "H100") == []
    assert await store.delete_submission(ranked_id, who) is None  # once
    queued_id = (await store.submission_runs(queued.submission_id))[0].public_id
    done = await store.delete_submission(queued_id, None)
    assert done is not None and (done.unranked, done.cancelled) == (0, 2)
    runs = await store.submission_runs(queued.submission_id)
    assert [(r.state, r.deleted) for r in runs] == [("CANCELLED", True)] * 2
    assert await store.user_submissions(who) == []
