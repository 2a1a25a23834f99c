"""The API processes' caches (gateway/http/api/caches.py) against real PostgreSQL: two apps, each with its
own service and memory as two `gateway serve` processes have, on one scratch database and no worker. A
ranking is kept (a change made behind the gateway's back, with no NOTIFY, stays unseen) until a result that
ranks, a deletion or a deadline reaches both through NOTIFY; ETags answer 304 while it is unchanged; a lost
LISTEN connection leaves no stale ranking; a hidden board's cached ranking is never shown to a caller who
may not see it; a revoked token is refused at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway.config.settings import Settings
from gateway.service.facade import OPERATOR, Gateway
from gateway.service.model import SubmitRequest
from tests.conftest import solution
from tests.integration.api_harness import ADMIN_TOKEN, ApiUnderTest, api_on, api_server

pytestmark = pytest.mark.integration
HEARD_S = 5.0  # a NOTIFY reaches both processes well within this (milliseconds on one machine)


@asynccontextmanager
async def two_apis(settings: Settings) -> AsyncIterator[tuple[ApiUnderTest, ApiUnderTest]]:
    async with (
        api_server(settings, worker=False) as first,
        api_on(first.settings, worker=False) as second,
    ):
        await asyncio.sleep(0.2)  # both hubs LISTENing (the caches are unused until they are)
        yield first, second


async def ranked_submission(gateway: Gateway, board: str, user: str, score: float) -> str:
    """A leaderboard submission of ``user`` whose public run and secret rerun both pass (recorded as a
    worker records them); its public run's id."""
    submission = await gateway.enqueue(
        SubmitRequest(
            code=solution("vectoradd", "correct.py"),
            file_name="k.py",
            user=user,
            leaderboard=board,
            gpu_type="H100",
            mode="leaderboard",
        )
    )
    store = gateway.store
    assert store is not None
    async with store._conn() as conn:  # where a worker would have run them
        await conn.execute(
            "UPDATE runs SET site = 'alpha', backend = 'slurm' WHERE id = ANY($1::uuid[])", submission.run_ids
        )
    for run in submission.runs:
        await store.record_result(
            run.run_id,
            state="COMPLETED",
            passed=True,
            score=score,
            result=None,
            system_info=None,
            error=None,
            message="passed",
        )
    return submission.public_run.run_id


async def test_rankings_are_kept_until_notify_says_they_changed_in_every_process(
    stack_settings: Settings,
) -> None:
    async with two_apis(stack_settings) as (first, second), httpx.AsyncClient() as client:
        gateway = first.gateway
        board = await first.board()
        path = f"/api/leaderboards/{board}/ranking"

        async def entries(api: ApiUnderTest) -> list[str]:
            answer = await client.get(api.url + path, params={"gpu": "H100"})
            assert answer.status_code == 200, answer.text
            return [e["run_id"] for e in answer.json()[0]["entries"]]

        async def both_show(expected: list[str], what: str) -> None:
            deadline = time.monotonic() + HEARD_S
            for api in (first, second):
                while (shown := await entries(api)) != expected:
                    assert time.monotonic() < deadline, f"{what}: {shown} shown, not {expected}"
                    await asyncio.sleep(0.02)

        assert await entries(first) == await entries(second) == []
        old = await client.get(first.url + path, params={"gpu": "H100"})
        again = await client.get(
            first.url + path, params={"gpu": "H100"}, headers={"If-None-Match": old.headers["etag"]}
        )
        assert again.status_code == 304 and again.headers["etag"] == old.headers["etag"] and not again.content

        # a result that ranks reaches both processes' next reads, and the old ETag no longer matches
        alice = await ranked_submission(gateway, board, "alice", 2e-5)
        await both_show([alice], "the ranked run shown")
        changed = await client.get(
            second.url + path, params={"gpu": "H100"}, headers={"If-None-Match": old.headers["etag"]}
        )
        assert changed.status_code == 200 and changed.headers["etag"] != old.headers["etag"]

        # kept: a change behind the gateway's back (no NOTIFY) is not seen by a process that holds the answer
        store = gateway.store
        assert store is not None
        async with store._conn() as conn:
            await conn.execute("UPDATE runs SET ranked = false WHERE id = $1::uuid", alice)
        assert await entries(first) == await entries(second) == [alice]

        # a lost LISTEN connection (as at a PostgreSQL restart) drops the caches: the change shows
        async with store._conn() as conn:
            ended = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
            )
        assert ended >= 2  # one hub each
        await both_show([], "the change made while listening was down")
        async with store._conn() as conn:
            await conn.execute("UPDATE runs SET ranked = true WHERE id = $1::uuid", alice)
        await asyncio.sleep(1.5)  # the hubs listen again (RECONNECT_S), with caches emptied then
        await both_show([alice], "the ranking read again after the reconnect")

        # a better run of another user, then its deletion, each reach both
        bob = await ranked_submission(gateway, board, "bob", 1e-5)
        await both_show([bob, alice], "bob's better run")
        bob_submission = (await gateway.run(bob, caller=OPERATOR)).public_id
        await gateway.competitions.delete(bob_submission, caller=OPERATOR)
        await both_show([alice], "bob's deleted run gone")

        # a deadline change drops every board's answers
        async with store._conn() as conn:
            await conn.execute("UPDATE runs SET ranked = false WHERE id = $1::uuid", alice)
        assert await entries(second) == [alice]  # kept
        await gateway.boards.set_deadline(board, datetime.now(UTC) + timedelta(days=1), caller=OPERATOR)
        await both_show([], "the ranking read after the deadline change")


async def test_a_hidden_boards_cached_ranking_and_a_revoked_token_stay_refused(
    stack_settings: Settings,
) -> None:
    async with two_apis(stack_settings) as (first, second), httpx.AsyncClient() as client:
        hidden = await first.board(visibility="hidden")
        path = f"/api/leaderboards/{hidden}/ranking"
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        token = await first.user_token("carol")
        user = {"Authorization": f"Bearer {token}"}
        for _ in range(2):  # the admin's answer is kept, and kept apart
            assert (await client.get(first.url + path, headers=admin)).status_code == 200
            assert (await client.get(first.url + path)).status_code == 404
            assert (await client.get(first.url + path, headers=user)).status_code == 404
        for _ in range(2):  # the board's record is kept for submissions: still not found to a user
            refused = await client.post(
                first.url + "/api/submissions",
                headers=user,
                files={"file": ("k.py", solution("vectoradd", "correct.py").encode())},
                data={"leaderboard": hidden, "mode": "test"},
            )
            assert refused.status_code == 404 and hidden in refused.json()["error"], refused.text
        assert (await client.get(first.url + "/api/me", headers=user)).status_code == 200
        assert (await client.get(second.url + "/api/me", headers=user)).status_code == 200  # kept in both
        await first.gateway.accounts.revoke_token("carol", caller=OPERATOR)
        deadline = time.monotonic() + HEARD_S
        for api in (first, second):
            while (await client.get(api.url + "/api/me", headers=user)).status_code != 401:
                assert time.monotonic() < deadline, "the revoked token is still taken"
                await asyncio.sleep(0.02)
