"""Bans, deadlines, rate limits and the cap on unfinished runs against the real PostgreSQL
(QueueStore.create_submission): a refusal says why, what to do and when to retry, and stores nothing;
concurrent submissions of one user are serialised on the user's row, so a limit of k admits exactly k of
them, and a cap holds across any number of store connections (API processes, bots)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from gateway.core.errors import RefusedError, UserError
from gateway.store import LeaderboardRecord, RateLimit, Store
from tests.integration.scratch import Sub, finish, migrated_store, new_board, submit

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def db(dev_env: dict[str, str]) -> AsyncIterator[tuple[Store, str]]:
    async with migrated_store(dev_env["GATEWAY_DATABASE_URL"], "test_refusals") as made:
        yield made


@pytest.fixture
def store(db: tuple[Store, str]) -> Store:
    return db[0]


@pytest.fixture
async def raw(db: tuple[Store, str]) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection for what the store has no reading for: counting every row of a table."""
    conn = await asyncpg.connect(db[1])
    yield conn
    await conn.close()


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


TABLES = ("users", "code_blobs", "submissions", "runs", "run_events")


async def counts(raw: asyncpg.Connection) -> dict[str, int]:
    return {t: await raw.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


async def refused(store: Store, board: LeaderboardRecord | None, who: str, **options: object) -> RefusedError:
    with pytest.raises(RefusedError) as caught:
        await submit(store, board, who, **options)  # type: ignore[arg-type]
    return caught.value


async def limit(
    store: Store, board: LeaderboardRecord, k: int, per_s: int, mode: str = "leaderboard"
) -> None:
    await store.set_rate_limit(board.id, RateLimit(mode, k, per_s), mode)


# -- bans -------------------------------------------------------------------------------------------


async def test_a_banned_user_is_refused_and_nothing_is_stored(store: Store, raw: asyncpg.Connection) -> None:
    board, who = await new_board(store), user()
    await submit(store, board, who)
    assert await store.set_banned(who, True)
    before = await counts(raw)
    for target, mode in ((board, "leaderboard"), (board, "test"), (None, "test")):  # ad-hoc runs too
        error = await refused(store, target, who, mode=mode, secret=mode == "leaderboard")
        assert error.reason == "banned" and error.retry_after_s is None
        assert (
            str(error)
            == f"{who} is banned from submitting; ask the organisers if you think this is a mistake"
        )
    assert await counts(raw) == before
    assert len(await store.history(who)) == 2  # what they submitted before the ban stays

    assert await store.set_banned(who, False)
    await submit(store, board, who)
    assert len(await store.history(who)) == 4


async def test_a_ban_can_come_before_the_users_first_submission(
    store: Store, raw: asyncpg.Connection
) -> None:
    who = user()
    assert await store.set_banned(who, True)
    before = await counts(raw)
    assert (await refused(store, await new_board(store), who)).reason == "banned"
    assert await counts(raw) == before


# -- deadlines --------------------------------------------------------------------------------------


async def test_a_closed_leaderboard_refuses_every_mode_and_stores_nothing(
    store: Store, raw: asyncpg.Connection
) -> None:
    closed_at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    board = await new_board(store, deadline=closed_at)
    newcomer = user()
    before = await counts(raw)
    for mode in ("leaderboard", "test", "benchmark", "profile"):
        error = await refused(store, board, newcomer, mode=mode, secret=mode == "leaderboard")
        assert error.reason == "closed" and error.retry_after_s is None
        assert (
            str(error)
            == f"leaderboard {board.name} closed at 2024-05-01 12:30 UTC; it takes no more submissions"
        )
    assert await counts(raw) == before  # not even the newcomer's user row
    assert await store.get_user(newcomer) is None


async def test_a_deadline_counts_from_when_it_passes(store: Store) -> None:
    board = await new_board(store, deadline=datetime.now(UTC) + timedelta(seconds=1.5))
    who = user()
    await submit(store, board, who)  # still open
    await asyncio.sleep(1.6)
    assert (await refused(store, board, who)).reason == "closed"
    assert await store.set_deadline(board.name, None)  # reopened
    await submit(store, board, who)
    assert await store.set_deadline(board.name, datetime.now(UTC) - timedelta(minutes=1))
    assert (await refused(store, board, who, mode="test", secret=False)).reason == "closed"
    assert len(await store.history(who, board.id)) == 4


async def test_a_deleted_leaderboard_is_a_user_error(store: Store) -> None:
    board = await new_board(store)
    assert await store.delete_leaderboard(board.name) == (0, 0)
    with pytest.raises(UserError, match="no longer exists"):
        await submit(store, board, user())


# -- rate limits ------------------------------------------------------------------------------------


async def test_a_rate_limit_refuses_the_next_submission_and_says_when_to_retry(
    store: Store, raw: asyncpg.Connection
) -> None:
    board, who = await new_board(store), user()
    await limit(store, board, 2, 3600)
    await submit(store, board, who)
    await submit(store, board, who)
    before = await counts(raw)
    error = await refused(store, board, who)
    assert error.reason == "rate_limited"
    assert error.retry_after_s is not None and 3590 < error.retry_after_s <= 3600
    assert str(error) == (
        f"rate limited: 2 leaderboard submission(s) per 1 h on {board.name}; try again in 1 h"
    )
    assert await counts(raw) == before
    # the limit is per user, per mode and per leaderboard
    await submit(store, board, user())
    await submit(store, board, who, mode="test", secret=False)
    await submit(store, await new_board(store), who)
    # and may be lifted
    await store.set_rate_limit(board.id, None, "leaderboard")
    await submit(store, board, who)


async def test_retrying_when_told_succeeds(store: Store) -> None:
    board, who = await new_board(store), user()
    await limit(store, board, 2, 2, mode="test")
    await submit(store, board, who, mode="test", secret=False)
    await asyncio.sleep(0.5)
    await submit(store, board, who, mode="test", secret=False)
    error = await refused(store, board, who, mode="test", secret=False)
    assert error.retry_after_s is not None and 1.0 <= error.retry_after_s <= 1.5  # the first one leaves first
    assert re.search(r"try again in [12] s$", str(error))  # rounded up: never early
    await asyncio.sleep(error.retry_after_s + 0.02)
    await submit(store, board, who, mode="test", secret=False)
    assert (await refused(store, board, who, mode="test", secret=False)).reason == "rate_limited"


async def test_a_lowered_limit_waits_until_enough_submissions_left_the_window(store: Store) -> None:
    board, who = await new_board(store), user()
    await submit(store, board, who)
    await asyncio.sleep(1.5)
    await submit(store, board, who)
    await submit(store, board, who)
    await limit(store, board, 2, 60)  # three in the window, two allowed: the first leaving is not enough
    error = await refused(store, board, who)
    assert error.retry_after_s is not None and 59.0 < error.retry_after_s <= 60.0
    assert str(error).endswith("try again in 1 min")


@pytest.mark.parametrize("existing_user", [False, True], ids=["new-user", "existing-user"])
@pytest.mark.parametrize("k", [1, 3])
async def test_concurrent_submissions_of_one_user_admit_exactly_the_limit(
    store: Store, raw: asyncpg.Connection, existing_user: bool, k: int
) -> None:
    board, who, n = await new_board(store), user(), 12
    if existing_user:
        await store.ensure_user(who)
    await limit(store, board, k, 3600)
    outcomes = await asyncio.gather(*(submit(store, board, who) for _ in range(n)), return_exceptions=True)
    admitted = [o for o in outcomes if isinstance(o, Sub)]
    refusals = [o for o in outcomes if isinstance(o, RefusedError)]
    assert len(admitted) == k and len(refusals) == n - k, outcomes
    assert all(r.reason == "rate_limited" for r in refusals)
    stored = await raw.fetchval(
        "SELECT count(*) FROM submissions s JOIN users u ON u.id = s.user_id "
        "WHERE u.name = $1 AND s.leaderboard_id = $2",
        who,
        board.id,
    )
    assert stored == k
    assert len(await store.history(who)) == 2 * k  # a public run and a secret rerun each


async def test_a_users_submissions_wait_for_the_lock_on_their_row(
    store: Store, raw: asyncpg.Connection
) -> None:
    """The mechanism behind the exact limit: create_submission takes the user's row lock (its upsert) before
    it counts, so a second transaction holding that lock holds the submission back until it ends."""
    board, who = await new_board(store), user()
    await store.ensure_user(who)
    async with raw.transaction():
        await raw.execute("SELECT 1 FROM users WHERE name = $1 FOR UPDATE", who)
        pending = asyncio.create_task(submit(store, board, who))
        await asyncio.sleep(0.5)
        assert not pending.done()
        others = await submit(store, board, user())  # other users are not held back
        assert others.submission_id
    await asyncio.wait_for(pending, 10)


# -- the gateway's default per-minute limit ---------------------------------------------------------


async def test_the_default_per_minute_limit_counts_every_leaderboard_together(
    store: Store, raw: asyncpg.Connection
) -> None:
    one, two, who = await new_board(store), await new_board(store), user()
    await submit(store, one, who, per_minute=3)
    await asyncio.sleep(1.0)
    await submit(store, two, who, per_minute=3, mode="test", secret=False)
    await submit(store, None, who, per_minute=3, mode="test", secret=False)  # ad-hoc runs count too
    before = await counts(raw)
    for board in (one, two, None):
        error = await refused(store, board, who, per_minute=3, mode="test", secret=False)
        assert error.reason == "rate_limited"
        assert error.retry_after_s is not None and 57.0 < error.retry_after_s <= 59.1  # the first one leaves
        assert (
            str(error)
            == "rate limited: 3 submission(s) per minute across all leaderboards; try again in 59 s"
        )
    assert await counts(raw) == before
    await submit(store, one, user(), per_minute=3)  # other users are not held back
    await submit(store, one, who)  # without the default (None), only the leaderboard's limits apply


async def test_the_default_per_minute_limit_comes_on_top_of_a_leaderboards_own(store: Store) -> None:
    board, who = await new_board(store), user()
    await limit(store, board, 5, 3600)
    await submit(store, board, who, per_minute=1)
    assert (await refused(store, board, who, per_minute=1)).reason == "rate_limited"
    await limit(store, board, 1, 3600)  # the leaderboard's own refusal is told first
    assert f"per 1 h on {board.name}" in str(await refused(store, board, who, per_minute=1))


# -- the cap on each user's unfinished runs ---------------------------------------------------------


async def test_a_submission_that_would_pass_the_cap_is_refused_and_stores_nothing(
    store: Store, raw: asyncpg.Connection
) -> None:
    board, who = await new_board(store), user()
    first = await submit(store, board, who, max_unfinished=5)
    await submit(store, board, who, max_unfinished=5)  # 4 unfinished runs: 2 public runs, 2 secret reruns
    before = await counts(raw)
    error = await refused(store, board, who, max_unfinished=5)
    assert error.reason == "too_many_unfinished" and error.retry_after_s is None
    assert str(error) == (
        "too many unfinished runs: you have 4 queued or running and this submission adds 2, but at most 5 "
        "may be unfinished at once; wait for some to finish, or cancel some you no longer need"
    )
    assert await counts(raw) == before
    await submit(store, board, who, mode="test", secret=False, max_unfinished=5)  # one run still fits: 5
    # every leaderboard and ad-hoc runs count together
    elsewhere = await new_board(store)
    for target in (board, elsewhere, None):
        error = await refused(store, target, who, mode="test", secret=False, max_unfinished=5)
        assert error.reason == "too_many_unfinished" and "you have 5 queued or running" in str(error)
    # a finished run frees its slot, and so does a queued run cancelled
    assert first.secret is not None
    await finish(store, first.public, True, 1.0)
    await submit(store, elsewhere, who, mode="test", secret=False, max_unfinished=5)
    assert (await refused(store, None, who, mode="test", secret=False, max_unfinished=5)).reason == (
        "too_many_unfinished"
    )
    assert await store.request_cancel(first.secret) == "queued"
    await submit(store, None, who, mode="test", secret=False, max_unfinished=5)
    assert await unfinished(raw, who) == 5
    await submit(store, board, who)  # without the default (None) and no cap of the board's: no cap


async def test_a_leaderboards_own_cap_overrides_the_default(store: Store) -> None:
    strict, roomy, who = await new_board(store), await new_board(store), user()
    assert await store.set_unfinished_cap(strict.name, 2)
    assert await store.set_unfinished_cap(roomy.name, 8)
    assert (await store.get_leaderboard(strict.name)).max_unfinished_per_user == 2  # type: ignore[union-attr]
    await submit(store, strict, who, max_unfinished=4)  # 2 runs: the strict board's cap, below the default
    error = await refused(store, strict, who, mode="test", secret=False, max_unfinished=4)
    assert "you have 2 queued or running and this submission adds 1, but at most 2 may be unfinished at " in (
        str(error)
    )
    assert str(error).endswith(
        f"at once on {strict.name}; wait for some to finish, or cancel some you no longer need"
    )
    await submit(store, None, who, max_unfinished=4, mode="test", secret=False)  # elsewhere: the default
    await submit(store, None, who, max_unfinished=4, mode="test", secret=False)
    assert (await refused(store, None, who, mode="test", secret=False, max_unfinished=4)).reason == (
        "too_many_unfinished"
    )
    for _ in range(2):  # the roomy board lets the same user have more (all of their runs counted)
        await submit(store, roomy, who, max_unfinished=4)
    assert "at most 8 may be unfinished at once on " in str(
        await refused(store, roomy, who, max_unfinished=4)
    )
    assert await store.set_unfinished_cap(roomy.name, None)  # back to the default
    assert (await store.get_leaderboard(roomy.name)).max_unfinished_per_user is None  # type: ignore[union-attr]
    assert "may be unfinished at once; wait" in str(await refused(store, roomy, who, max_unfinished=4))
    assert not await store.set_unfinished_cap(f"no-such-{who}", 3)


@pytest.mark.parametrize(("mode", "cap", "admitted"), [("test", 1, 1), ("test", 5, 5), ("leaderboard", 5, 2)])
async def test_concurrent_submitters_of_one_user_never_pass_the_cap(
    db: tuple[Store, str], raw: asyncpg.Connection, mode: str, cap: int, admitted: int
) -> None:
    """Two stores (two API processes, or the bot beside the API) and three targets at once: the user's row
    lock counts one submission after another, so exactly as many as fit are admitted."""
    store, dsn = db
    other: Store = await Store.connect(dsn, max_size=10)
    try:
        targets = [
            await new_board(store),
            await new_board(store),
            None if mode == "test" else await new_board(store),
        ]
        who, n = user(), 18
        outcomes = await asyncio.gather(
            *(
                submit(
                    (store, other)[i % 2],
                    targets[i % 3],
                    who,
                    mode=mode,
                    secret=mode == "leaderboard",
                    max_unfinished=cap,
                )
                for i in range(n)
            ),
            return_exceptions=True,
        )
    finally:
        await other.close()
    refusals = [o for o in outcomes if isinstance(o, RefusedError)]
    assert all(r.reason == "too_many_unfinished" for r in refusals), outcomes
    assert n - len(refusals) == admitted
    assert await unfinished(raw, who) == admitted * (2 if mode == "leaderboard" else 1)


async def unfinished(raw: asyncpg.Connection, who: str) -> int:
    count: int = await raw.fetchval(
        "SELECT count(*) FROM runs r JOIN users u ON u.id = r.user_id "
        "WHERE u.name = $1 AND r.finished_at IS NULL",
        who,
    )
    return count
