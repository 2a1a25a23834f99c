"""The HTTP API against the real service, PostgreSQL and the dev stack's Slurm sites: a submission made
over HTTP is followed as server-sent events to its result and onto the ranking; requests without a valid
token, oversized and non-UTF-8 files are refused with messages that say what to fix."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from gateway.config.settings import Settings
from gateway.service.facade import OPERATOR
from tests.conftest import solution
from tests.integration.api_harness import ADMIN_TOKEN, ApiUnderTest, api_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(stack_settings: Settings) -> AsyncIterator[ApiUnderTest]:
    async with api_server(stack_settings) as under_test:
        yield under_test


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def follow(client: httpx.AsyncClient, path: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    async with aconnect_sse(client, "GET", path) as source:
        async for sse in source.aiter_sse():
            events.append((sse.event, json.loads(sse.data)))
            if sse.event == "end":
                break
    return events


async def test_a_submission_over_http_is_followed_to_its_result_and_ranked(api: ApiUnderTest) -> None:
    board = await api.board(("H100",))
    token = await api.user_token("alice")
    async with httpx.AsyncClient(base_url=api.url, timeout=120) as client:
        answer = await client.post(
            "/api/submissions",
            headers=bearer(token),
            files={"file": ("correct.py", solution("vectoradd", "correct.py"))},
            data={"leaderboard": board, "gpu_type": "H100"},
        )
        assert answer.status_code == 202, answer.text
        submitted = answer.json()
        public, secret = (
            submitted["public_run_id"],
            next(r["run_id"] for r in submitted["runs"] if r["secret"]),
        )
        assert submitted["events_url"] == f"/api/submissions/{submitted['submission_id']}/events"

        events = await follow(client, submitted["events_url"])
        kinds = [(kind, data.get("run_id"), data.get("state")) for kind, data in events]
        assert kinds[0] == ("state", public, "QUEUED") or kinds[0][1] == secret
        assert ("state", public, "RUNNING") in kinds
        assert any(k == "finished" and r == public for k, r, _ in kinds)
        assert any(k == "finished" and r == secret for k, r, _ in kinds)
        assert events[-1][0] == "end"
        finished = next(data for kind, data in events if kind == "finished" and data["run_id"] == public)
        verdict = next(data for kind, data in events if kind == "finished" and data["run_id"] == secret)
        assert verdict["message"] == "secret rerun passed"
        assert finished["run"]["passed"] is True and finished["run"]["score"] > 0  # the result, in the stream
        # the secret rerun's progress never leaves the gateway
        assert not any(kind == "progress" and data["run_id"] == secret for kind, data in events)

        run = (await client.get(f"/api/runs/{public}")).json()
        assert run["passed"] is True and run["state"] == "COMPLETED" and run["site"] in ("alpha", "beta")
        assert [t["passed"] for t in run["tests"]] == [True, True, True]
        assert all(b["mean_s"] > 0 for b in run["benchmarks"])
        hidden = (await client.get(f"/api/runs/{secret}")).json()
        assert hidden["passed"] is True and hidden["tests"] == [] and hidden["score"] is None

        ranking = (await client.get(f"/api/leaderboards/{board}/ranking", params={"gpu": "H100"})).json()
        assert [(e["rank"], e["user"], e["run_id"]) for e in ranking[0]["entries"]] == [(1, "alice", public)]
        timeline = (await client.get(f"/api/leaderboards/{board}/timeline", params={"gpu": "H100"})).json()
        assert [p["run_id"] for p in timeline] == [public]
        await own_code_and_deletion(api, client, board, submitted["submission_id"], token, ranking)


async def own_code_and_deletion(
    api: ApiUnderTest, client: httpx.AsyncClient, board: str, sub: str, token: str, ranking: Any
) -> None:
    """alice reads and deletes her own submission and nobody else can; after the deadline of a board that
    reveals code everyone reads it; the export holds the ranking's rows."""
    exported = (await client.get(f"/api/leaderboards/{board}/export", params={"format": "json"})).json()
    assert [(e["rank"], e["user"], e["run_id"]) for e in exported["entries"]] == [
        (e["rank"], e["user"], e["run_id"]) for e in ranking[0]["entries"]
    ]
    csv_text = (await client.get(f"/api/leaderboards/{board}/export", params={"format": "csv"})).text
    assert csv_text.splitlines()[0].startswith("leaderboard,gpu_type,rank,user,score,submission_id")
    bob = bearer(await api.user_token("bob"))
    code_path = f"/api/submissions/{sub}/code"
    mine = await client.get(code_path, headers=bearer(token))
    assert mine.status_code == 200 and mine.json()["code"] == solution("vectoradd", "correct.py")
    for headers in (bob, {}):
        refused = await client.get(code_path, headers=headers)
        assert refused.status_code == 403 and "does not reveal code" in refused.json()["error"]
    assert (await client.delete(f"/api/submissions/{sub}", headers=bob)).status_code == 403
    assert (await client.delete(f"/api/submissions/{sub}")).status_code == 401
    await api.gateway.competitions.set_reveal_code(board, True, caller=OPERATOR)
    await api.gateway.boards.set_deadline(board, datetime(2001, 1, 1, tzinfo=UTC), caller=OPERATOR)
    assert (await client.get(code_path, headers=bob)).json()["code"] == mine.json()["code"]
    late = await client.delete(f"/api/submissions/{sub}", headers=bearer(token))
    assert late.status_code == 403 and "final ranking stays" in late.json()["error"]
    await api.gateway.boards.set_deadline(board, None, caller=OPERATOR)
    deleted = await client.delete(f"/api/submissions/{sub}", headers=bearer(token))
    assert deleted.status_code == 200 and "it left the ranking" in deleted.json()["message"]
    assert (await client.get(f"/api/leaderboards/{board}/ranking")).json()[0]["entries"] == []
    assert (await client.get(f"/api/submissions/{sub}")).status_code == 404
    assert (await client.get(code_path, headers=bearer(token))).status_code == 404


async def test_requests_without_a_valid_token_are_refused(api: ApiUnderTest) -> None:
    board = await api.board(("H100",))
    files = {"file": ("k.py", "def custom_kernel(data):\n    return data\n")}
    async with httpx.AsyncClient(base_url=api.url) as client:
        missing = await client.post("/api/submissions", files=files, data={"leaderboard": board})
        wrong = await client.post(
            "/api/submissions", headers=bearer("gwt_not-a-token"), files=files, data={"leaderboard": board}
        )
        token = await api.user_token("carol")
        assert await api.gateway.accounts.revoke_token("carol", caller=OPERATOR)
        revoked = await client.post(
            "/api/submissions", headers=bearer(token), files=files, data={"leaderboard": board}
        )
        user_on_admin = await client.post("/api/admin/users/dave/token", headers=bearer(token))
        admin = await client.post("/api/admin/users/dave/token", headers=bearer(ADMIN_TOKEN))
    assert missing.status_code == 401 and "no API token" in missing.json()["error"]
    assert wrong.status_code == 401 and "unknown or was revoked" in wrong.json()["error"]
    assert revoked.status_code == 401
    assert user_on_admin.status_code in (401, 403)
    assert admin.status_code == 200 and admin.json()["token"].startswith("gwt_")
    assert (await api.gateway.accounts.user_for_token(admin.json()["token"])).name == "dave"  # type: ignore[union-attr]
    assert await api.gateway.runs(leaderboard=board, caller=OPERATOR) == []  # nothing was stored


async def test_oversized_and_non_utf8_files_are_refused_with_clear_messages(api: ApiUnderTest) -> None:
    board = await api.board(("H100",))
    token = await api.user_token("erin")
    limit = api.settings.max_submission_bytes
    async with httpx.AsyncClient(base_url=api.url, headers=bearer(token)) as client:
        big = await client.post(
            "/api/submissions", files={"file": ("big.py", b"#" * (limit + 1))}, data={"leaderboard": board}
        )
        huge = await client.post(
            "/api/submissions", files={"file": ("huge.py", b"#" * (limit * 8))}, data={"leaderboard": board}
        )
        latin1 = await client.post(
            "/api/submissions",
            files={"file": ("latin1.py", "# café\n".encode("latin-1"))},
            data={"leaderboard": board},
        )
        unknown = await client.post(
            "/api/submissions", files={"file": ("k.py", b"pass\n")}, data={"leaderboard": "no-such-board"}
        )
    assert big.status_code == 413
    assert big.json()["error"] == f"'big.py' is {limit + 1} bytes; the limit is {limit} bytes"
    assert huge.status_code == 413 and f"at most {limit} bytes" in huge.json()["error"]
    assert latin1.status_code == 400
    assert "not UTF-8" in latin1.json()["error"] and "0xe9" in latin1.json()["error"]
    assert unknown.status_code == 404 and "no leaderboard named" in unknown.json()["error"]
    assert await api.gateway.runs(leaderboard=board, caller=OPERATOR) == []


@pytest.fixture
async def queue_only(stack_settings: Settings) -> AsyncIterator[ApiUnderTest]:
    """The API with no worker (runs stay queued) and a submission limit of 2 a minute per user."""
    async with api_server(stack_settings, worker=False, api_submissions_per_minute=2) as under_test:
        yield under_test


async def test_limits_bans_deadlines_and_admin_endpoints(queue_only: ApiUnderTest) -> None:
    api = queue_only
    board = await api.board(("H100",))
    alice, bob, carol = [await api.user_token(name) for name in ("alice", "bob", "carol")]
    files = {"file": ("k.py", solution("vectoradd", "correct.py"))}
    admin = bearer(ADMIN_TOKEN)
    async with httpx.AsyncClient(base_url=api.url) as client:

        async def post(token: str) -> httpx.Response:
            return await client.post(
                "/api/submissions", headers=bearer(token), files=files, data={"leaderboard": board}
            )

        first, second, third = [await post(alice) for _ in range(3)]
        assert first.status_code == second.status_code == 202  # gpu_type defaults to the board's only one
        assert first.json()["runs"][0]["gpu_type"] == "H100"
        assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
        assert "too many submissions from alice" in third.json()["error"]

        # the leaderboard's own limit is the service's, answered as 429 too
        await api.gateway.boards.set_rate_limit(board, "leaderboard", 1, 3600, caller=OPERATOR)
        limited = await post(bob)
        assert limited.status_code == 202
        limited = await post(bob)
        assert limited.status_code == 429 and "Retry-After" in limited.headers, limited.text

        banned = await client.post("/api/admin/users/carol/ban", headers=admin)
        assert banned.json() == {"user": "carol", "banned": True, "changed": True}
        refused = await post(carol)
        assert refused.status_code == 403 and "banned" in refused.json()["error"]
        assert (await client.post("/api/admin/users/carol/unban", headers=admin)).json()["changed"] is True

        # cancelling: one's own runs only, anyone's with the admin token
        run_id = first.json()["public_run_id"]
        assert (await client.post(f"/api/runs/{run_id}/cancel", headers=bearer(bob))).status_code == 403
        cancelled = await client.post(f"/api/runs/{run_id}/cancel", headers=bearer(alice))
        assert "cancelled before it started" in cancelled.json()["message"]
        assert (await client.get(f"/api/runs/{run_id}")).json()["state"] == "CANCELLED"

        drained = await client.post(
            "/api/admin/sites/alpha/drain", headers=admin, json={"reason": "maintenance"}
        )
        assert drained.json() == {"site": "alpha", "drained": True}
        assert (await api.gateway.sites.health())["alpha"].drain_reason == "maintenance"
        assert (await client.post("/api/admin/sites/alpha/resume", headers=admin)).status_code == 200
        unknown_site = await client.post("/api/admin/sites/nowhere/drain", headers=admin)
        assert unknown_site.status_code == 400 and "unknown site 'nowhere'" in unknown_site.json()["error"]

        revoked = await client.delete("/api/admin/users/alice/token", headers=admin)
        assert revoked.json() == {"user": "alice", "revoked": True}
        assert (await client.get("/api/me", headers=bearer(alice))).status_code == 401


async def test_hidden_boards_events_resume_metrics_health_and_openapi(queue_only: ApiUnderTest) -> None:
    api = queue_only
    board = await api.board(("H100",))
    hidden = await api.board(("H100",), visibility="hidden")
    token = await api.user_token("frank")
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        names = [b["name"] for b in (await client.get("/api/leaderboards")).json()]
        assert board in names
        assert hidden not in names
        assert (await client.get(f"/api/leaderboards/{hidden}/ranking")).status_code == 404
        assert (
            await client.get(f"/api/leaderboards/{hidden}", headers=bearer(ADMIN_TOKEN))
        ).status_code == 200
        as_admin = await client.get("/api/leaderboards", headers=bearer(ADMIN_TOKEN))
        assert hidden in [b["name"] for b in as_admin.json()]

        submitted = (
            await client.post(
                "/api/submissions",
                headers=bearer(token),
                files={"file": ("k.py", solution("vectoradd", "correct.py"))},
                data={"leaderboard": board, "mode": "test"},
            )
        ).json()
        run_id = submitted["public_run_id"]
        assert [r["secret"] for r in submitted["runs"]] == [False]  # test mode: no secret rerun
        assert submitted["queue_position"] == 1
        # a follower that reconnects with Last-Event-ID gets only what it missed
        await api.gateway.store.add_event(run_id, "progress", "RUNNING", "test 1/3 passed")  # type: ignore[union-attr]
        await api.gateway.store.add_event(run_id, "finished", "COMPLETED", "done")  # type: ignore[union-attr]
        everything = await follow(client, f"/api/runs/{run_id}/events")
        assert [kind for kind, _ in everything] == ["state", "progress", "finished", "end"]
        first_id = everything[0][1]["id"]
        client.headers["Last-Event-ID"] = str(first_id)
        resumed = await follow(client, f"/api/runs/{run_id}/events")
        del client.headers["Last-Event-ID"]
        assert [data.get("message") for _, data in resumed[:2]] == ["test 1/3 passed", "done"]

        metrics = (await client.get("/metrics")).text
        assert "gateway_queue_depth " in metrics and 'gateway_runs{state="QUEUED"}' in metrics
        assert (
            'gateway_http_requests_total{method="POST",route="/api/submissions",status="202"} 1.0' in metrics
        )
        assert "gateway_site_drained" in metrics
        assert (await client.get("/api/health")).json() == {"status": "ok", "database": True, "sites": 2}
        gpus = {g["gpu_type"]: g["sites"] for g in (await client.get("/api/gpu-types")).json()}
        assert "H100" in gpus and "alpha" in gpus["H100"]

        spec = (await client.get("/openapi.json")).json()
        assert {"/api/submissions", "/api/runs/{run_id}/events", "/api/leaderboards/{name}/ranking"} <= set(
            spec["paths"]
        )
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        malformed = await client.get(f"/api/leaderboards/{board}/ranking", params={"top": "lots"})
        assert malformed.status_code == 422 and "top" in malformed.json()["error"]
        assert (await client.get("/api/runs/zzz")).status_code == 404  # not a run id: names no run
        assert (await client.get("/api/submissions/999999")).status_code == 404
