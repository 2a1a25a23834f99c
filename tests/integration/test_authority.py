"""Authority through the HTTP API and the web pages, tried as an attacker would (issue 16): an ordinary user
cannot name a site or the gateway's own machine, and nothing of theirs runs; an admin account still
may; a hidden board is answered to anyone else exactly as a board that does not exist, through every
endpoint, event stream and page; submissions and runs cannot be walked by their ids; malformed ids are
404s, never server errors. The worker side: a queued run for the gateway's own machine is refused unless
the operator enabled it, and a local job never sees the worker's environment."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from gateway.config.settings import Settings
from gateway.service.facade import OPERATOR, Gateway
from gateway.store import NewRun
from tests.conftest import solution
from tests.integration.api_harness import ADMIN_TOKEN, api_server
from tests.integration.scratch import migrated_store
from tests.integration.test_api import bearer, follow

pytestmark = pytest.mark.integration


def marking(marker: Path) -> str:
    """A correct kernel that first leaves a file behind: if it ever runs, the file says so."""
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n" + solution(
        "vectoradd", "correct.py"
    )


async def post(client: httpx.AsyncClient, token: str, code: str, **data: str) -> httpx.Response:
    return await client.post(
        "/api/submissions", headers=bearer(token), files={"file": ("k.py", code)}, data=data
    )


async def test_only_admins_name_a_site_and_nobody_runs_on_the_gateways_machine(
    stack_settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-here"
    code = marking(marker)
    # a worker that would even run local runs: still, nothing of an ordinary user's reaches it
    async with api_server(stack_settings, worker_runs_local=True) as api:
        board = await api.board(("H100",))
        mallory = await api.user_token("mallory")
        async with httpx.AsyncClient(base_url=api.url, timeout=120) as client:
            for data, message in [
                ({"site": "local"}, "naming a site is for the gateway's admins"),
                ({"site": "alpha", "gpu_type": "H100"}, "naming a site is for the gateway's admins"),
                ({"site": "no-such-site"}, "naming a site is for the gateway's admins"),
                ({"gpu_type": "local"}, "runs on the gateway's own machine are for its admins"),
            ]:
                refused = await post(client, mallory, code, leaderboard=board, mode="test", **data)
                assert refused.status_code == 403, (data, refused.text)
                assert message in refused.json()["error"], (data, refused.text)
            assert await api.gateway.runs(user="mallory", caller=OPERATOR) == []  # nothing stored

            # an admin account's token may name a site, and its run goes there
            await api.gateway.accounts.set_admin("root", True, caller=OPERATOR)
            root = await api.user_token("root")
            assert (await client.get("/api/me", headers=bearer(root))).json()["admin"] is True
            named = await post(
                client,
                root,
                solution("vectoradd", "correct.py"),
                leaderboard=board,
                site="alpha",
                mode="test",
            )
            assert named.status_code == 202, named.text
            events = await follow(client, named.json()["events_url"])
            finished = next(data for kind, data in events if kind == "finished")
            assert finished["run"]["site"] == "alpha" and finished["run"]["passed"], finished
            # 'local' is never a leaderboard's GPU type, for admins too
            local = await post(client, root, code, leaderboard=board, gpu_type="local", mode="test")
            assert local.status_code == 400 and "does not rank 'local'" in local.json()["error"], local.text
            # the admin token has no account to submit as, and a user token is no admin's
            assert (await post(client, ADMIN_TOKEN, code, leaderboard=board)).status_code == 401
            assert (await client.post("/api/admin/users/x/ban", headers=bearer(mallory))).status_code == 403
        await asyncio.sleep(1.0)  # a worker that had been handed any of them would have started it
    assert not marker.exists()


async def test_a_hidden_board_is_answered_as_one_that_does_not_exist(stack_settings: Settings) -> None:
    async with api_server(stack_settings, worker=False) as api:
        hidden = await api.board(("H100",), visibility="hidden")
        missing = f"vectoradd-{uuid.uuid4().hex[:8]}"  # the same shape of name, never made
        public = await api.board(("H100",))
        await api.gateway.accounts.set_admin("root", True, caller=OPERATOR)
        root, alice = await api.user_token("root"), await api.user_token("alice")
        code = solution("vectoradd", "correct.py")
        async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
            secret_sub = (await post(client, root, code, leaderboard=hidden, mode="test")).json()
            public_sub = (await post(client, alice, code, leaderboard=public, mode="test")).json()
            hidden_run = secret_sub["public_run_id"]

            def as_missing(response: httpx.Response, name: str) -> tuple[int, str]:
                return response.status_code, response.text.replace(name, "NAME")

            board_paths = [
                "/api/leaderboards/{}",
                "/api/leaderboards/{}/ranking",
                "/api/leaderboards/{}/timeline?gpu=H100",
                "/api/leaderboards/{}/runs",
                "/api/leaderboards/{}/events",
                "/leaderboards/{}",
            ]
            for headers in ({}, bearer(alice)):  # anonymous, and an ordinary user's token
                for path in board_paths:
                    seen = await client.get(path.format(hidden), headers=headers)
                    absent = await client.get(path.format(missing), headers=headers)
                    assert seen.status_code == 404, (path, seen.text)
                    assert as_missing(seen, hidden) == as_missing(absent, missing), path
                listed = [b["name"] for b in (await client.get("/api/leaderboards", headers=headers)).json()]
                assert public in listed and hidden not in listed
                fake_sub, fake_run = uuid.uuid4().hex, str(uuid.uuid4())
                for real, fake in [
                    (f"/api/submissions/{secret_sub['submission_id']}", f"/api/submissions/{fake_sub}"),
                    (
                        f"/api/submissions/{secret_sub['submission_id']}/events",
                        f"/api/submissions/{fake_sub}/events",
                    ),
                    (f"/submissions/{secret_sub['submission_id']}", f"/submissions/{fake_sub}"),
                    (f"/api/runs/{hidden_run}", f"/api/runs/{fake_run}"),
                    (f"/api/runs/{hidden_run}/events", f"/api/runs/{fake_run}/events"),
                    (f"/runs/{hidden_run}", f"/runs/{fake_run}"),
                ]:
                    seen, absent = (
                        await client.get(real, headers=headers),
                        await client.get(fake, headers=headers),
                    )
                    assert seen.status_code == 404, (real, seen.text)
                    assert seen.text.replace(hidden_run, "ID").replace(secret_sub["submission_id"], "ID") == (
                        absent.text.replace(fake_run, "ID").replace(fake_sub, "ID")
                    ), real
            # submitting to it, or cancelling a run of it, is answered as for a board or run that is not there
            seen = await post(client, alice, code, leaderboard=hidden, mode="test")
            absent = await post(client, alice, code, leaderboard=missing, mode="test")
            assert seen.status_code == 404 and as_missing(seen, hidden) == as_missing(absent, missing)
            cancel = await client.post(f"/api/runs/{hidden_run}/cancel", headers=bearer(alice))
            assert cancel.status_code == 404, cancel.text

            # ids cannot be walked: a submission's number and a run id's first characters name nothing
            # to anyone but admins (the public id is 128 random bits)
            public_run = public_sub["public_run_id"]
            number = (await api.gateway.submission_runs(public_sub["submission_id"], caller=OPERATOR))[
                0
            ].submission_id
            assert len(public_sub["submission_id"]) == 32 and public_sub["submission_id"] != str(number)
            for path in (
                f"/api/submissions/{number}",
                f"/api/runs/{public_run[:8]}",
                f"/api/runs/{public_run[:35]}",
            ):
                assert (await client.get(path, headers=bearer(alice))).status_code == 404, path
                assert (await client.get(path, headers=bearer(ADMIN_TOKEN))).status_code == 200, path
            # admins see the hidden board and its runs through the API, with the admin token or an admin
            # account's token (the web pages are anonymous: they show public boards only)
            for token in (ADMIN_TOKEN, root):
                for path in [
                    p.format(hidden) for p in board_paths if p.startswith("/api") and "events" not in p
                ] + [
                    f"/api/submissions/{secret_sub['submission_id']}",
                    f"/api/runs/{hidden_run}",
                ]:
                    shown = await client.get(path, headers=bearer(token))
                    assert shown.status_code == 200, (path, shown.text)
            # hostile ids are 404s (or 422 for a malformed query), never a server error
            hostile = ["9" * 23, "-1", "%00", "é" * 40, "x" * 10_000, "1.5", "..%2Fme", "g" * 36]
            for bad in hostile:
                for path in (f"/api/submissions/{bad}", f"/api/runs/{bad}", f"/api/runs/{bad}/events"):
                    for headers in ({}, bearer(ADMIN_TOKEN)):
                        answer = await client.get(path, headers=headers)
                        assert answer.status_code in (404, 422), (path, answer.status_code, answer.text[:200])
                answer = await client.post(f"/api/runs/{bad}/cancel", headers=bearer(alice))
                assert answer.status_code in (404, 422), (bad, answer.status_code)
            metrics = (await client.get("/metrics")).text
            assert hidden not in metrics and public not in metrics  # no board names in labels


async def test_a_worker_refuses_runs_for_its_own_machine_unless_its_operator_enables_it(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """A run queued for the local site (an old row, or one an admin's tooling made) is recorded failed
    by a worker whose operator did not enable local runs; its code never runs."""
    marker = tmp_path / "ran-on-the-worker"
    dsn = stack_settings.database_dsn()
    assert dsn is not None
    async with migrated_store(dsn, "test_authority") as (store, scratch_dsn):
        settings = Settings(
            database_url=scratch_dsn,
            sites_dir=stack_settings.sites_dir,
            local_workdir=tmp_path / "runs",
            worker_heartbeat_s=0.5,
            worker_stale_s=3.0,
        )
        gateway = await Gateway.open(settings)
        try:
            task = await gateway.boards.load_task_directory("vectoradd")
            board = await gateway.boards.create_leaderboard(
                f"b-{uuid.uuid4().hex[:8]}", task, ["H100"], caller=OPERATOR
            )
            run_id = str(uuid.uuid4())
            await store.create_submission(
                "someone", board.id, task.name, "k.py", marking(marker), "test",
                [NewRun(run_id, "test", "local", "00" * 32, requested_site="local")],
            )  # fmt: skip
            stop = asyncio.Event()
            worker = asyncio.create_task(gateway.worker().run(stop))
            try:
                for _ in range(100):
                    record = await gateway.run(run_id, caller=OPERATOR)
                    if record.finished_at is not None:
                        break
                    await asyncio.sleep(0.1)
            finally:
                stop.set()
                await asyncio.wait_for(worker, 30)
            assert record.state == "FAILED" and "GATEWAY_WORKER_RUNS_LOCAL" in (record.error or ""), record
        finally:
            await gateway.close()
    assert not marker.exists()
