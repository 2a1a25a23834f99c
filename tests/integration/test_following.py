"""Following a run as a user does it, against the dev stack: `gateway submit --detach` returns at once
with the ids, a `gateway worker` (a real subprocess on a scratch database) runs the submission on a Slurm
site, and `gateway runs watch ID` follows it to its end with the result table; the same over the HTTP API
with --remote; the remote read commands; GET /api/me/submissions lists one's own submissions only."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.sites import load_sites
from gateway.running.transport.ssh import SSHTransport
from gateway.service.facade import OPERATOR
from gateway.service.model import SubmitRequest
from tests.conftest import PROBLEMS
from tests.integration.api_harness import ApiUnderTest, api_server
from tests.integration.test_remote_cli import Cli

pytestmark = pytest.mark.integration
SOLUTIONS = PROBLEMS / "vectoradd" / "solutions"
RUN_ID = re.compile(r"^run ([0-9a-f-]{36}) \(H100\)$", re.MULTILINE)


@pytest.fixture(scope="module")
async def api(
    dev_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    """The API on a scratch database, with no worker of its own: the `gateway worker` below runs it all."""
    settings = Settings(
        database_url=dev_env["GATEWAY_DATABASE_URL"],
        sites_dir=Path(dev_env["GATEWAY_SITES_DIR"]),
        local_workdir=tmp_path_factory.mktemp("runs"),
    )
    async with api_server(settings, worker=False) as under_test:
        yield under_test


@pytest.fixture(scope="module")
def worker(
    api: ApiUnderTest, dev_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """`gateway worker` of this checkout on the API's scratch database; its log's path."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = os.environ | dev_env | {"PYTHONPATH": str(REPO_ROOT)}
    env["GATEWAY_DATABASE_URL"] = api.settings.database_dsn() or ""
    env["GATEWAY_LOCAL_WORKDIR"] = str(tmp_path_factory.mktemp("worker-runs"))
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "worker", "--concurrency", "4"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def cli(tmp_path: Path, dev_env: dict[str, str], api: ApiUnderTest) -> Cli:
    cli = Cli(tmp_path, dev_env)
    cli.env["GATEWAY_DATABASE_URL"] = api.settings.database_dsn() or ""  # local commands: the scratch one
    return cli


async def test_submit_detach_returns_at_once_and_runs_watch_follows_it_to_the_end(
    api: ApiUnderTest, cli: Cli, worker: Path
) -> None:
    board = await api.board(("H100",))
    file = cli.home / "kernel.py"
    header = f"#!POPCORN leaderboard {board}\n#!POPCORN gpu H100\n"  # the board and GPU from the file
    file.write_text(header + (SOLUTIONS / "correct.py").read_text())
    detached = await cli("submit", str(file), "--detach", "--user", "carol")
    assert detached.returncode == 0, detached.stdout + detached.stderr
    [run_id] = RUN_ID.findall(detached.stdout)
    assert f"gateway runs watch {run_id}" in detached.stdout
    assert "a `gateway worker` connected to this database runs it" in " ".join(detached.stdout.split())
    record = await api.gateway.run(run_id, caller=OPERATOR)
    assert record.leaderboard == board and record.gpu_type == "H100" and record.user_name == "carol"
    assert record.finished_at is None  # it returned before the run ended

    watched = await cli("runs", "watch", run_id[:8])
    out = watched.stdout
    assert watched.returncode == 0, out + watched.stderr + worker.read_text()
    lines = out.splitlines()
    assert any(line.startswith(f"{run_id[:8]} submitted as job ") for line in lines)
    assert any(line.startswith(f"{run_id[:8]} RUNNING") for line in lines)
    assert "secret rerun (hidden inputs): passed" in out
    assert "passed  score " in out and "(state COMPLETED)" in out
    assert out.count("│ test ") == 3 and out.count("│ benchmark ") == 2

    again = await cli("runs", "watch", run_id)  # a finished run: shown at once, the same way
    assert again.returncode == 0 and "passed  score " in again.stdout

    mine = await cli("runs", "mine", "--user", "carol", "--json")
    assert mine.returncode == 0, mine.stderr
    [item] = json.loads(mine.stdout)["submissions"]
    assert item["public_run_id"] == run_id and item["passed"] is True and item["leaderboard"] == board


async def test_a_failing_run_watched_exits_1_and_a_bad_directive_stores_nothing(
    api: ApiUnderTest, cli: Cli, worker: Path
) -> None:
    board = await api.board(("H100",))
    wrong = cli.home / "wrong.py"
    wrong.write_text((SOLUTIONS / "wrong.py").read_text())
    detached = await cli(
        "submit", str(wrong), "--detach", "--leaderboard", board, "--gpu", "H100", "--mode", "test"
    )
    assert detached.returncode == 0, detached.stdout + detached.stderr
    [run_id] = RUN_ID.findall(detached.stdout)
    watched = await cli("runs", "watch", run_id)
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert "failed  test (" in watched.stdout

    bad = cli.home / "bad.py"
    bad.write_text("#!POPCORN leaderbord x\n" + (SOLUTIONS / "correct.py").read_text())
    refused = await cli("submit", str(bad), "--detach", "--gpu", "H100")
    assert refused.returncode == 2
    assert "line 1: unknown directive 'leaderbord'" in refused.stdout
    before = await api.gateway.runs(limit=1000, caller=OPERATOR)
    assert all(run.file_name != "bad.py" for run in before)


async def test_remote_detach_watch_and_reads(api: ApiUnderTest, cli: Cli, worker: Path) -> None:
    board = await api.board(("H100",))
    token = await api.user_token("dora")
    login = await cli("login", api.url, "--token-stdin", stdin=token + "\n")
    assert login.returncode == 0, login.stdout + login.stderr
    file = cli.home / "kernel.py"
    file.write_text(f"#!POPCORN leaderboard {board}\n" + (SOLUTIONS / "correct.py").read_text())

    detached = await cli("submit", str(file), "--remote", api.url, "--detach")
    assert detached.returncode == 0, detached.stdout + detached.stderr
    [run_id] = RUN_ID.findall(detached.stdout)
    assert f"gateway runs watch {run_id} --remote {api.url}" in detached.stdout

    watched = await cli("runs", "watch", run_id, "--remote", api.url)
    out = watched.stdout
    assert watched.returncode == 0, out + watched.stderr + worker.read_text()
    assert any(line.startswith(f"{run_id[:8]} RUNNING") for line in out.splitlines())
    assert "secret rerun (hidden inputs): passed" in out and "passed  score " in out
    assert out.count("│ test ") == 3 and out.count("│ benchmark ") == 2

    # the remote reads render the local tables, and --json prints the API's documents
    boards = await cli("leaderboard", "list", "--remote", api.url, "--json")
    assert boards.returncode == 0, boards.stderr
    assert board in [b["name"] for b in json.loads(boards.stdout)]
    table = await cli("leaderboard", "list", "--remote", api.url)
    assert board in table.stdout and "│" in table.stdout
    ranking = await cli("leaderboard", "show", board, "--remote", api.url)
    assert ranking.returncode == 0, ranking.stderr
    assert "dora" in ranking.stdout and run_id[:8] in ranking.stdout
    local_ranking = await cli("leaderboard", "show", board)
    row = next(line for line in ranking.stdout.splitlines() if run_id[:8] in line)
    assert row in local_ranking.stdout.splitlines()  # the same row, read remotely and locally
    ranked = json.loads((await cli("leaderboard", "show", board, "--remote", api.url, "--json")).stdout)
    assert ranked[0]["entries"][0]["run_id"] == run_id
    shown = await cli("runs", "show", run_id, "--remote", api.url)
    assert shown.returncode == 0 and f"run {run_id}" in shown.stdout and "│ benchmark" in shown.stdout
    as_json = json.loads((await cli("runs", "show", run_id, "--remote", api.url, "--json")).stdout)
    assert as_json["run_id"] == run_id and as_json["passed"] is True
    mine = await cli("runs", "mine", "--remote", api.url)
    assert mine.returncode == 0 and run_id in mine.stdout

    missing = await cli("runs", "watch", run_id[:8], "--remote", api.url)  # prefixes are admins'
    assert missing.returncode == 2 and "no run with id" in missing.stdout + missing.stderr


async def test_own_submissions_are_listed_to_their_owner_only_a_page_at_a_time(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    settings = Settings(
        database_url=dev_env["GATEWAY_DATABASE_URL"],
        sites_dir=Path(dev_env["GATEWAY_SITES_DIR"]),
        local_workdir=tmp_path,
    )
    async with api_server(settings, worker=False) as api:  # queued only: nothing runs
        board = await api.board(("H100",))
        hidden = await api.board(("H100",), visibility="hidden")
        code = (SOLUTIONS / "correct.py").read_text()
        made: dict[str, list[str]] = {"erin": [], "fred": []}
        for user, board_name in [("erin", board), ("fred", board), ("erin", board), ("erin", hidden)]:
            request = SubmitRequest(
                code,
                "k.py",
                user,
                leaderboard=board_name,
                gpu_type="H100",
                mode="test",
                admin=board_name == hidden,
            )
            made[user].append((await api.gateway.enqueue(request)).public_id)
        tokens = {user: await api.user_token(user) for user in ("erin", "fred")}
        async with httpx.AsyncClient(base_url=api.url) as client:

            async def page(user: str, **params: str | int) -> httpx.Response:
                headers = {"Authorization": f"Bearer {tokens[user]}"}
                return await client.get("/api/me/submissions", params=params, headers=headers)

            first = (await page("erin", limit=1)).json()
            assert [s["submission_id"] for s in first["submissions"]] == [made["erin"][1]]
            second = (await page("erin", limit=1, before=first["next_before"])).json()
            assert [s["submission_id"] for s in second["submissions"]] == [made["erin"][0]]
            assert (await page("erin", limit=5, before=made["erin"][0])).json() == {
                "submissions": [],
                "next_before": None,
            }
            everything = (await page("erin", limit=10)).json()
            assert [s["submission_id"] for s in everything["submissions"]] == made["erin"][1::-1]
            assert everything["next_before"] is None  # the hidden board's is not listed
            item = everything["submissions"][0]
            assert item["state"] == "QUEUED" and item["passed"] is None and item["leaderboard"] == board
            fred = (await page("fred")).json()
            assert [s["submission_id"] for s in fred["submissions"]] == made["fred"]
            # another user's submission as the cursor shows nothing of theirs
            assert (await page("fred", before=made["erin"][1])).json()["submissions"] == []
            anonymous = await client.get("/api/me/submissions")
            assert anonymous.status_code == 401 and "API token" in anonymous.json()["error"]
            bad = await page("erin", before="not-an-id")
            assert bad.status_code == 400 and "is not a submission id" in bad.json()["error"]
            queued = await client.get(f"/api/runs/{item['public_run_id']}")
            assert queued.json()["queue_position"] in (1, 2, 3, 4)


async def test_a_run_waiting_on_a_full_cluster_tells_slurms_reason_and_expected_start(
    api: ApiUnderTest, cli: Cli, worker: Path, dev_env: dict[str, str]
) -> None:
    """alpha (the only H100 site) has two GPUs: with both taken, the run's job waits for Resources, and
    its state event, in the store and on the API's event stream, says when Slurm expects it to start."""
    site = load_sites(Path(dev_env["GATEWAY_SITES_DIR"]))["alpha"]
    assert site.login is not None
    ssh = SSHTransport(site.name, site.login)
    sleepers: list[str] = []
    try:
        for _ in range(2):
            done = await ssh.run(
                [
                    "sbatch",
                    "--parsable",
                    "--gres=gpu:h100:1",
                    "--time=1",
                    "--chdir=/tmp",
                    "--output=/dev/null",
                    "--job-name=gw-follow-sleeper",
                    "--wrap",
                    "sleep 40",
                ]
            )
            sleepers.append(done.stdout.strip().split(";")[0])
        board = await api.board(("H100",))
        file = cli.home / "kernel.py"
        file.write_text((SOLUTIONS / "correct.py").read_text())
        detached = await cli(
            "submit", str(file), "--detach", "--leaderboard", board, "--gpu", "H100", "--mode", "test"
        )
        assert detached.returncode == 0, detached.stdout + detached.stderr
        [run_id] = RUN_ID.findall(detached.stdout)
        seen: dict[str, object] = {}
        async with (
            httpx.AsyncClient(base_url=api.url, timeout=httpx.Timeout(10, read=90)) as client,
            client.stream("GET", f"/api/runs/{run_id}/events") as stream,
        ):
            async for line in stream.aiter_lines():
                data = json.loads(line[len("data: ") :]) if line.startswith("data: ") else {}
                if data.get("start_estimate"):
                    seen = data
                    break
        assert seen["kind"] == "state" and seen["state"] == "PENDING"
        assert seen["reason"] == "Resources: waiting for a free GPU"
        assert "Slurm expects it to start at" in str(seen["message"])
        events = await api.gateway.run_events(run_id, caller=OPERATOR)
        estimates = [e for e in events if "Slurm expects it to start at" in e.message]
        assert 1 <= len(estimates) <= 3  # once per change worth telling, not once per poll
        [routed] = [e for e in events if e.message.startswith("routed to ")]  # its fields are data
        assert routed.data is not None and set(routed.data) == {
            "site",
            "partition",
            "gpu_type",
            "backend",
            "why",
        }
        assert routed.data["gpu_type"] == "H100" and routed.data["backend"] == "slurm"
        assert routed.message.startswith(f"routed to {routed.data['site']}/{routed.data['partition']} (H100)")
    finally:
        if sleepers:
            await ssh.run(["scancel", *sleepers], check=False)
        await ssh.close()
    watched = await cli("runs", "watch", run_id)
    assert watched.returncode == 0, watched.stdout + watched.stderr + worker.read_text()
    assert (
        f"{run_id[:8]} PENDING (Resources: waiting for a free GPU); Slurm expects it to start at"
        in watched.stdout
    )
