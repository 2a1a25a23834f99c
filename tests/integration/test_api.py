"""The HTTP API against the real service, PostgreSQL and the dev stack's Slurm sites: a submission made
over HTTP is followed as server-sent events to its result and onto the ranking; requests without a valid
token, oversized and non-UTF-8 files are refused with messages that say what to fix."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from gateway.settings import Settings
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


async def test_requests_without_a_valid_token_are_refused(api: ApiUnderTest) -> None:
    board = await api.board(("H100",))
    files = {"file": ("k.py", "def custom_kernel(data):\n    return data\n")}
    async with httpx.AsyncClient(base_url=api.url) as client:
        missing = await client.post("/api/submissions", files=files, data={"leaderboard": board})
        wrong = await client.post(
            "/api/submissions", headers=bearer("gwt_not-a-token"), files=files, data={"leaderboard": board}
        )
        token = await api.user_token("carol")
        assert await api.gateway.revoke_token("carol")
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
    assert (await api.gateway.user_for_token(admin.json()["token"])).name == "dave"  # type: ignore[union-attr]
    assert await api.gateway.runs(leaderboard=board) == []  # nothing was stored


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
    assert big.status_code == 413 and f"at most {limit} bytes" in big.json()["error"]
    assert "big.py" in big.json()["error"]
    assert huge.status_code == 413 and f"at most {limit} bytes" in huge.json()["error"]
    assert latin1.status_code == 400
    assert "not UTF-8" in latin1.json()["error"] and "0xe9" in latin1.json()["error"]
    assert unknown.status_code == 404 and "no leaderboard named" in unknown.json()["error"]
    assert await api.gateway.runs(leaderboard=board) == []
