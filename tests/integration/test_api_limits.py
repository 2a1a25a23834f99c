"""The HTTP API's limits hold across API processes: two apps (each with its own service, pool and memory, as
two `gateway serve` processes have) on one scratch database. Token buckets in PostgreSQL (the statement's
maths against the database's clock, pruning), submissions and requests refused past the limit whichever
process is asked, event streams capped per client and in all, a crashed process's leases expiring, and
/metrics behind its token without leaderboard names."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from pydantic import SecretStr

from gateway.config.settings import Settings
from tests.conftest import solution
from tests.integration.api_harness import ADMIN_TOKEN, ApiUnderTest, api_on, api_server

pytestmark = pytest.mark.integration


@asynccontextmanager
async def two_apis(
    settings: Settings, **overrides: object
) -> AsyncIterator[tuple[ApiUnderTest, ApiUnderTest]]:
    """Two API servers on one scratch database, no worker (runs stay queued)."""
    async with (
        api_server(settings, worker=False, **overrides) as first,  # type: ignore[arg-type]
        api_on(first.settings, worker=False) as second,
    ):
        yield first, second


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_bucket_statement_refills_at_its_rate_and_prunes_full_buckets(
    stack_settings: Settings,
) -> None:
    async with api_server(stack_settings, worker=False) as api:
        gateway, store = api.gateway, api.gateway.store
        assert store is not None
        took = [await gateway.limits.take_token("k", 3) for _ in range(4)]
        assert [t.taken for t in took] == [True, True, True, False]
        assert took[2].tokens == pytest.approx(0.0, abs=0.01)
        assert took[3].wait_s == pytest.approx(20.0, abs=0.5)  # 3 a minute: one every 20 s
        assert (await gateway.limits.take_token("other", 3)).taken  # keys are independent
        async with store._conn() as conn:  # the bucket's clock 20 s back: one token refilled
            await conn.execute("UPDATE api_buckets SET at = at - interval '20 s' WHERE key = 'k'")
        assert (await gateway.limits.take_token("k", 3)).taken
        assert not (await gateway.limits.take_token("k", 3)).taken
        async with store._conn() as conn:  # 'other' is full again after 20 s; 'k' is not
            await conn.execute("UPDATE api_buckets SET full_at = now() - interval '1 s' WHERE key = 'other'")
        assert await gateway.limits.prune_token_buckets() == 1
        async with store._conn() as conn:
            assert [r["key"] for r in await conn.fetch("SELECT key FROM api_buckets")] == ["k"]


async def test_submission_and_request_limits_hold_across_two_api_processes(stack_settings: Settings) -> None:
    async with two_apis(stack_settings, api_submissions_per_minute=3, api_requests_per_minute=30) as (a, b):
        board = await a.board(("H100",))
        token = await a.user_token("alice")
        files = {"file": ("k.py", solution("vectoradd", "correct.py"))}
        async with httpx.AsyncClient(timeout=30) as client:
            posted = [
                await client.post(
                    f"{(a, b)[i % 2].url}/api/submissions",
                    headers=bearer(token),
                    files=files,
                    data={"leaderboard": board, "mode": "test"},
                )
                for i in range(6)
            ]
            assert [p.status_code for p in posted] == [202, 202, 202, 429, 429, 429]
            refused = posted[-1]
            assert "too many submissions from alice" in refused.json()["error"]
            assert 15 <= int(refused.headers["Retry-After"]) <= 21  # 3 a minute: one every 20 s

            started = time.monotonic()  # 6 of the address's 30 requests are spent; 24 left, both ways
            answers = [
                (await client.get(f"{(a, b)[i % 2].url}/api/leaderboards")).status_code for i in range(40)
            ]
            refilled = int((time.monotonic() - started) / 2)  # 30 a minute: one every 2 s
        assert 24 <= answers.count(200) <= 24 + refilled + 1
        assert answers.count(429) == 40 - answers.count(200)
        assert answers[:24] == [200] * 24


async def _open(
    stack: AsyncExitStack, client: httpx.AsyncClient, url: str, token: str | None = None
) -> httpx.Response:
    return await stack.enter_async_context(
        client.stream("GET", url, headers=bearer(token) if token else None)  # headers in; body left open
    )


async def _wait_for_streams(api: ApiUnderTest, count: int) -> None:
    for _ in range(100):
        if await api.gateway.limits.open_streams() == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{await api.gateway.limits.open_streams()} streams open, not {count}")


async def test_event_streams_are_capped_per_client_and_in_all_across_processes(
    stack_settings: Settings,
) -> None:
    async with two_apis(stack_settings, api_max_streams=4, api_max_streams_per_client=2) as (a, b):
        board = await a.board(("H100",))
        alice, bob, carol = [await a.user_token(name) for name in ("alice", "bob", "carol")]
        async with httpx.AsyncClient(timeout=30) as client:
            submitted = await client.post(
                f"{a.url}/api/submissions",
                headers=bearer(alice),
                files={"file": ("k.py", solution("vectoradd", "correct.py"))},
                data={"leaderboard": board, "mode": "test"},
            )
            run = submitted.json()["public_run_id"]
            path = f"/api/runs/{run}/events"
            async with AsyncExitStack() as stack:
                first = await _open(stack, client, a.url + path)  # by address: 127.0.0.1
                second = await _open(stack, client, b.url + path)
                third = await _open(stack, client, a.url + path)
                assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
                await third.aread()
                message = third.json()["error"]
                assert "too many event streams from 127.0.0.1" in message and "at most 2" in message
                assert int(third.headers["Retry-After"]) >= 1
                assert (await _open(stack, client, b.url + path, bob)).status_code == 200  # user bob
                assert (await _open(stack, client, a.url + path, bob)).status_code == 200
                refused = await _open(stack, client, b.url + path, carol)  # 4 open in all
                await refused.aread()
                assert refused.status_code == 503 and "at most 4" in refused.json()["error"]
                assert await a.gateway.limits.open_streams() == 4
                metrics = (await client.get(f"{b.url}/metrics")).text
                assert "gateway_event_streams_all 4.0" in metrics
            await _wait_for_streams(a, 0)  # closed streams give their leases back
            async with AsyncExitStack() as stack:
                assert (await _open(stack, client, b.url + path, carol)).status_code == 200


async def test_a_crashed_process_leases_expire_and_a_live_one_renews_them(stack_settings: Settings) -> None:
    async with api_server(stack_settings, worker=False, api_max_streams_per_client=2) as api:
        gateway = api.gateway
        await gateway.limits.open_stream("dead-process", "address:127.0.0.1", "x", 100, 100, ttl_s=1.0)
        kept = await gateway.limits.open_stream("live-process", "user:1", "y", 100, 100, ttl_s=1.0)
        await gateway.limits.renew_streams("live-process", {kept: "user:1"}, ttl_s=30.0)
        assert await gateway.limits.open_streams() == 2
        board = await api.board(("H100",))
        token = await api.user_token("alice")
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            run = (
                await client.post(
                    "/api/submissions",
                    headers=bearer(token),
                    files={"file": ("k.py", solution("vectoradd", "correct.py"))},
                    data={"leaderboard": board, "mode": "test"},
                )
            ).json()["public_run_id"]
            async with AsyncExitStack() as stack:
                opened = [await _open(stack, client, f"/api/runs/{run}/events") for _ in range(2)]
                assert [o.status_code for o in opened] == [200, 429]  # the dead process's lease counts
            await asyncio.sleep(1.2)
            async with AsyncExitStack() as stack:
                opened = [await _open(stack, client, f"/api/runs/{run}/events") for _ in range(2)]
                assert [o.status_code for o in opened] == [200, 200]  # until it expired
        await _wait_for_streams(api, 1)  # the server gave its leases back: the live process's is left
        assert await gateway.limits.prune_streams() >= 1
        await gateway.limits.renew_streams(
            "live-process", {}, ttl_s=30.0
        )  # a process keeps only what it serves
        assert await gateway.limits.open_streams() == 0


async def test_metrics_need_their_token_and_never_name_a_leaderboard(stack_settings: Settings) -> None:
    secret = "metrics-secret-token"
    async with api_server(stack_settings, worker=False, metrics_token=SecretStr(secret)) as api:
        hidden = await api.board(("H100",), visibility="hidden")
        public = await api.board(("H100",))
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            for board in (hidden, public):
                await client.get(f"/api/leaderboards/{board}/ranking")
                await client.get(f"/leaderboards/{board}")
                await client.get(f"/api/leaderboards/{board}", headers=bearer(ADMIN_TOKEN))
            nothing = await client.get("/metrics")
            wrong = await client.get("/metrics", headers=bearer("not-it"))
            admin = await client.get("/metrics", headers=bearer(ADMIN_TOKEN))
            scraped = await client.get("/metrics", headers=bearer(secret))
        assert nothing.status_code == wrong.status_code == admin.status_code == 401
        assert nothing.headers["WWW-Authenticate"] == "Bearer" and "metrics token" in nothing.json()["error"]
        assert scraped.status_code == 200 and "gateway_queue_depth 0.0" in scraped.text
        assert 'route="/api/leaderboards/{name}/ranking"' in scraped.text
        assert hidden not in scraped.text and public not in scraped.text
        assert hidden.split("-")[1] not in scraped.text  # not even the name's random part


async def test_takes_asked_for_together_get_what_the_bucket_holds_even_racing_for_a_new_key(
    stack_settings: Settings,
) -> None:
    async with two_apis(stack_settings) as (first, second):
        one, two = first.gateway.limits, second.gateway.limits
        took = await one.take_tokens("burst", 5, 3)  # a new key starts full
        assert (took.granted, took.taken, took.wait_s) == (3, True, 0.0)
        took = await two.take_tokens("burst", 5, 4)  # 2 left: 2 of 4, the rest wait for the refill
        assert took.granted == 2 and took.tokens == pytest.approx(0.0, abs=0.01)
        assert took.wait_s == pytest.approx(12.0, abs=0.5)  # 5 a minute: one every 12 s
        assert (await one.take_token("burst", 5)).taken is False
        for round_ in range(
            5
        ):  # both processes make the same new key's row at once: never more than it holds
            key = f"race-{round_}"
            both = await asyncio.gather(one.take_tokens(key, 4, 3), two.take_tokens(key, 4, 3))
            assert sum(t.granted for t in both) == 4, both
