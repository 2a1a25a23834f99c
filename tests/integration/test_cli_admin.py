"""The admin commands against the dev stack, as an admin types them: leaderboards (create, list, show,
delete, rate limits, deadlines), runs (list, show, cancel), users (ban) and sites (drain, resume, health).

The CLI runs as `python -m gateway.cli.main` from this checkout (PYTHONPATH), never the venv's `gateway`
script, which runs whichever checkout the venv was installed from. The database is shared: every test uses
names of its own and deletes what it created."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pty
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.core.errors import UserError
from gateway.service.facade import OPERATOR, Gateway, Mode
from gateway.service.model import Submission, SubmitRequest
from tests.conftest import PROBLEMS, solution
from tests.integration.site_files import dev_site_text, write_site

pytestmark = pytest.mark.integration
CORRECT = PROBLEMS / "vectoradd" / "solutions" / "correct.py"


def cli_env(dev_env: dict[str, str], **extra: str) -> dict[str, str]:
    return os.environ | dev_env | {"COLUMNS": "250", "NO_COLOR": "1", "PYTHONPATH": str(REPO_ROOT)} | extra


def cli(
    dev_env: dict[str, str], *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`gateway ARGS` from this checkout, stdin not a terminal; stdout and stderr as text."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        env=env or cli_env(dev_env),
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def submit_test(dev_env: dict[str, str], board: str, user: str) -> subprocess.CompletedProcess[str]:
    """`gateway submit` of the correct vectoradd kernel to ``board`` on H100, test mode, as ``user``."""
    return cli(
        dev_env,
        "submit",
        str(CORRECT),
        "--leaderboard",
        board,
        "--gpu",
        "H100",
        "--mode",
        "test",
        "--user",
        user,
    )


def on_a_terminal(dev_env: dict[str, str], answer: str, *args: str) -> tuple[int, str]:
    """`gateway ARGS` with its stdin on a pseudo-terminal, answering ``answer`` to its prompt."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", *args],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=cli_env(dev_env),
        )
        os.write(leader, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(leader)
        os.close(follower)
    return proc.returncode, out


def flat(text: str) -> str:
    """Output with table borders and line wraps taken out (cells fold long values)."""
    return " ".join(re.sub(r"[│┃┏┓┗┛┡┩└┘┌┐━─╇╈┳┻┼┬┴┣┫╋]", " ", text).split())


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def board(dev_env: dict[str, str]) -> Iterator[str]:
    """A fresh leaderboard name, deleted (with whatever it holds) after the test."""
    name = f"admin-{uuid.uuid4().hex[:10]}"
    yield name
    cli(dev_env, "leaderboard", "delete", name, "--yes")


async def enqueued(gateway: Gateway, board: str, user: str, mode: Mode = "test") -> Submission:
    """Queued without a worker in this process (the CLI's `submit` would also run it)."""
    code = solution("vectoradd", "correct.py")
    return await gateway.enqueue(
        SubmitRequest(code, "correct.py", user, leaderboard=board, gpu_type="H100", mode=mode)
    )


def test_create_list_show_and_delete(dev_env: dict[str, str], board: str, tmp_path: Path) -> None:
    hidden = f"{board}-hidden"
    out = ok(
        cli(
            dev_env,
            "leaderboard",
            "create",
            board,
            "--task",
            str(PROBLEMS / "vectoradd"),
            "--gpu",
            "L4",
            "--gpu",
            "H100",
            "--description",
            "adds [b]two[/b] vectors",
        )
    )
    assert f"created leaderboard {board} (public): task vectoradd" in flat(out)
    assert "GPU types H100, L4, deadline none (open)" in flat(out)
    again = cli(dev_env, "leaderboard", "create", board, "--task", str(PROBLEMS / "softmax"))
    assert again.returncode == 2 and "already exists (task vectoradd" in flat(again.stdout)
    every_gpu = cli(dev_env, "leaderboard", "create", f"{board}-x", "--task", str(PROBLEMS / "vectoradd"))
    assert "GPU types A100, H100, L4, deadline" in ok(every_gpu)
    assert ok(cli(dev_env, "leaderboard", "delete", f"{board}-x")).startswith("deleted leaderboard")
    task = str(PROBLEMS / "vectoradd")
    bad_gpu = cli(dev_env, "leaderboard", "create", f"{board}-y", "--task", task, "--gpu", "TPU")
    assert bad_gpu.returncode == 2 and "no site offers GPU type(s) 'TPU'" in bad_gpu.stdout
    try:
        ok(cli(dev_env, "leaderboard", "create", hidden, "--task", str(PROBLEMS / "vectoradd"), "--hidden"))
        listed = flat(ok(cli(dev_env, "leaderboard", "list")))
        assert f"{board} H100, L4 none (open) 0 0 adds [b]two[/b] vectors" in listed
        assert hidden not in listed
        assert f"{hidden} A100, H100, L4 none (open) 0 0" in flat(
            ok(cli(dev_env, "leaderboard", "list", "--all"))
        )
    finally:
        cli(dev_env, "leaderboard", "delete", hidden, "--yes")

    user = f"ada-{board}"
    ok(cli(dev_env, "submit", str(CORRECT), "--leaderboard", board, "--gpu", "L4", "--user", user))
    shown = flat(ok(cli(dev_env, "leaderboard", "show", board)))
    assert "task vectoradd, ranked by geom, GPU types H100, L4, public" in shown
    assert (
        "deadline: none (open) rate limits: none at most 20 unfinished runs per user (the gateway's "
        "default) adds [b]two[/b] vectors" in shown
    )
    row = re.search(rf"L4 1 {user} [\d.]+ [µnm]?s \d{{4}}-\d\d-\d\d [\d:]{{8}} correct.py beta", shown)
    assert row is not None, shown
    assert ok(cli(dev_env, "leaderboard", "show", board, "--gpu", "H100")).count(user) == 0
    # past its deadline the board keeps its ranking, final; the export holds the rows `show` prints
    ok(cli(dev_env, "leaderboard", "deadline", board, "2001-01-01T00:00Z"))
    assert row.group(0) in flat(ok(cli(dev_env, "leaderboard", "show", board)))
    shown_rows = [
        (ranking["gpu_type"], e["rank"], e["user"], e["score"], e["submission_id"], e["run_id"])
        for ranking in json.loads(ok(cli(dev_env, "leaderboard", "show", board, "--json")))
        for e in ranking["entries"]
    ]
    assert [r[:3] for r in shown_rows] == [("L4", 1, user)]
    written = ok(cli(dev_env, "leaderboard", "export", board, "--out", str(tmp_path)))
    assert f"{tmp_path}/{board}-ranking.csv" in flat(written)
    exported = json.loads((tmp_path / f"{board}-ranking.json").read_text())
    assert exported["final"] is True
    keys = ("gpu_type", "rank", "user", "score", "submission_id", "run_id")
    assert [tuple(e[k] for k in keys) for e in exported["entries"]] == shown_rows
    with (tmp_path / f"{board}-ranking.csv").open() as f:
        rows = [tuple(float(r[k]) if k == "score" else r[k] for k in keys) for r in csv.DictReader(f)]
    assert [(g, int(rank), *rest) for g, rank, *rest in rows] == shown_rows
    assert (
        ok(cli(dev_env, "leaderboard", "export", board, "--format", "csv"))
        .splitlines()[1]
        .startswith(f"{board},L4,1,{user},")
    )
    assert ok(cli(dev_env, "runs", "code", shown_rows[0][4])) == CORRECT.read_text()
    one = cli(dev_env, "leaderboard", "show", board, "--gpu", "A100")
    assert one.returncode == 2
    assert f"leaderboard {board} does not rank 'A100'; it ranks H100, L4" in one.stdout

    refused = cli(dev_env, "leaderboard", "delete", board)  # stdin is not a terminal: no prompt
    assert refused.returncode == 2
    assert f"leaderboard '{board}' has 1 submission(s) and 2 run(s); give --yes" in flat(refused.stdout)
    code, out = on_a_terminal(dev_env, "n", "leaderboard", "delete", board)
    assert code == 1 and "Delete it with all of them?" in out and "nothing deleted" in out
    assert board in ok(cli(dev_env, "leaderboard", "list"))
    code, out = on_a_terminal(dev_env, "y", "leaderboard", "delete", board)
    assert code == 0, out
    assert f"deleted leaderboard {board} with 1 submission(s) and 2 run(s)" in flat(out)
    gone = cli(dev_env, "leaderboard", "show", board)
    assert gone.returncode == 2 and f"no leaderboard named '{board}'" in gone.stdout
    assert ok(cli(dev_env, "runs", "list", "--user", user)).count("no runs match") == 1


async def test_deleting_warns_of_jobs_it_does_not_cancel(
    dev_env: dict[str, str], gateway: Gateway, board: str
) -> None:
    assert gateway.store is not None
    ok(cli(dev_env, "leaderboard", "create", board, "--task", str(PROBLEMS / "vectoradd"), "--gpu", "H100"))
    submitted = (await enqueued(gateway, board, f"busy-{board}")).public_run.run_id
    await enqueued(gateway, board, f"idle-{board}")
    await gateway.store.mark_submitted(submitted, "4242", "PENDING")  # as a worker records an sbatch
    out = flat(ok(cli(dev_env, "leaderboard", "delete", board, "--yes")))
    assert "warning: 1 of its runs have a job on a site, which deleting does not cancel" in out
    assert f"deleted leaderboard {board} with 2 submission(s) and 2 run(s)" in out


async def test_a_rate_limit_refuses_the_next_submission(
    dev_env: dict[str, str], gateway: Gateway, board: str
) -> None:
    ok(cli(dev_env, "leaderboard", "create", board, "--task", str(PROBLEMS / "vectoradd"), "--gpu", "H100"))
    out = ok(cli(dev_env, "leaderboard", "limit", board, "--mode", "test", "--max", "2", "--per", "1h"))
    assert f"{board}: 2 test submission(s) per 1 h per user" in out
    assert "2 test submission(s) per 1 h" in ok(cli(dev_env, "leaderboard", "limit", board))
    bad = cli(dev_env, "leaderboard", "limit", board, "--max", "2", "--per", "soon")
    assert bad.returncode == 2 and "'soon': give a duration such as" in bad.stdout
    half = cli(dev_env, "leaderboard", "limit", board, "--max", "2")
    assert half.returncode == 2 and "give both --max N and --per DURATION" in half.stdout

    user = f"rl-{board}"
    await enqueued(gateway, board, user)
    await enqueued(gateway, board, user)
    third = submit_test(dev_env, board, user)
    assert third.returncode == 3, third.stdout + third.stderr
    assert re.search(
        rf"refused: rate limited: 2 test submission\(s\) per 1 h on {board}; try again in (\d+ min|1 h)",
        flat(third.stdout),
    ), third.stdout
    assert len(await gateway.runs(user=user, caller=OPERATOR)) == 2  # the refused one stored nothing
    # other modes and other users are not counted against it
    await enqueued(gateway, board, user, mode="leaderboard")
    await enqueued(gateway, board, f"{user}-other")

    assert "no limit on test submissions" in ok(
        cli(dev_env, "leaderboard", "limit", board, "--off", "--mode", "test")
    )
    await enqueued(gateway, board, user)
    # two test runs, a leaderboard run and its rerun, one more
    assert len(await gateway.runs(user=user, caller=OPERATOR)) == 5


async def test_a_leaderboards_cap_on_unfinished_runs(
    dev_env: dict[str, str], gateway: Gateway, board: str
) -> None:
    ok(cli(dev_env, "leaderboard", "create", board, "--task", str(PROBLEMS / "vectoradd"), "--gpu", "H100"))
    assert "at most 20 unfinished runs per user (the gateway's default)" in ok(
        cli(dev_env, "leaderboard", "limit", board)
    )
    out = ok(cli(dev_env, "leaderboard", "limit", board, "--unfinished", "3"))
    assert f"{board}: at most 3 unfinished runs per user (this leaderboard's cap)" in out
    assert "at most 3 unfinished runs per user (this leaderboard's cap)" in flat(
        ok(cli(dev_env, "leaderboard", "show", board))
    )
    for bad, words in (("1", "give from 2"), ("many", "give a number of runs")):
        refused = cli(dev_env, "leaderboard", "limit", board, "--unfinished", bad)
        assert refused.returncode == 2 and words in flat(refused.stdout), refused.stdout + refused.stderr

    user = f"cap-{board}"
    await enqueued(gateway, board, user, mode="leaderboard")  # a public run and its secret rerun: 2 of 3
    third = cli(dev_env, "submit", str(CORRECT), "--leaderboard", board, "--gpu", "H100", "--user", user)
    assert third.returncode == 3, third.stdout + third.stderr
    assert (
        "refused: too many unfinished runs: you have 2 queued or running and this submission adds 2, but at "
        f"most 3 may be unfinished at once on {board}; wait for some to finish, or cancel some you no longer "
        "need"
    ) in flat(third.stdout)
    assert len(await gateway.runs(user=user, caller=OPERATOR)) == 2  # the refused one stored nothing

    out = ok(cli(dev_env, "leaderboard", "limit", board, "--unfinished", "default"))
    assert f"{board}: at most 20 unfinished runs per user (the gateway's default)" in out


async def test_a_deadline_in_the_past_refuses(dev_env: dict[str, str], gateway: Gateway, board: str) -> None:
    out = ok(
        cli(
            dev_env,
            "leaderboard",
            "create",
            board,
            "--task",
            str(PROBLEMS / "vectoradd"),
            "--gpu",
            "H100",
            "--deadline",
            "2001-02-03T04:05Z",
        )
    )
    assert "deadline 2001-02-03 04:05 UTC (closed)" in out
    assert f"{board} H100 2001-02-03 04:05 UTC (closed)" in flat(ok(cli(dev_env, "leaderboard", "list")))
    user = f"late-{board}"
    late = submit_test(dev_env, board, user)
    assert late.returncode == 3
    assert f"refused: leaderboard {board} closed at 2001-02-03 04:05 UTC" in flat(late.stdout)
    assert await gateway.runs(user=user, caller=OPERATOR) == []

    reopened = ok(cli(dev_env, "leaderboard", "deadline", board, "2999-01-01T01:00+02:00"))
    assert f"leaderboard {board} deadline: 2998-12-31 23:00 UTC (open)" in reopened
    await enqueued(gateway, board, user)
    ok(cli(dev_env, "leaderboard", "deadline", board, "2000-01-01"))  # no zone: UTC
    with pytest.raises(UserError, match="closed at 2000-01-01 00:00 UTC"):
        await enqueued(gateway, board, user)
    assert "deadline: none (open)" in ok(cli(dev_env, "leaderboard", "deadline", board, "--none"))
    await enqueued(gateway, board, user)
    assert len(await gateway.runs(user=user, caller=OPERATOR)) == 2

    garbled = cli(dev_env, "leaderboard", "deadline", board, "next friday")
    assert garbled.returncode == 2 and "'next friday' is not a date and time" in garbled.stdout
    neither = cli(dev_env, "leaderboard", "deadline", board)
    assert neither.returncode == 2 and "give a deadline (e.g. 2026-12-31T23:59Z) or --none" in neither.stdout
    missing = cli(dev_env, "leaderboard", "deadline", f"{board}-none", "--none")
    assert missing.returncode == 2 and f"no leaderboard named '{board}-none'" in missing.stdout


async def test_a_banned_user_is_refused_until_unbanned(
    dev_env: dict[str, str], gateway: Gateway, board: str
) -> None:
    ok(cli(dev_env, "leaderboard", "create", board, "--task", str(PROBLEMS / "vectoradd"), "--gpu", "H100"))
    user = f"mallory-{board}"
    unknown = cli(dev_env, "users", "unban", user)
    assert unknown.returncode == 2 and f"no user named '{user}'" in unknown.stdout
    assert f"user {user} is now banned from submitting" in ok(cli(dev_env, "users", "ban", user))
    assert f"user {user} is already banned" in ok(cli(dev_env, "users", "ban", user))
    done = submit_test(dev_env, board, user)
    assert done.returncode == 3 and f"refused: {user} is banned from submitting" in done.stdout
    assert await gateway.runs(user=user, caller=OPERATOR) == []
    with pytest.raises(UserError, match="is banned"):
        await enqueued(gateway, board, user)
    assert f"user {user} is now allowed to submit" in ok(cli(dev_env, "users", "unban", user))
    await enqueued(gateway, board, user)
    assert len(await gateway.runs(user=user, caller=OPERATOR)) == 1


async def test_runs_list_show_and_cancel_a_queued_run(
    dev_env: dict[str, str], gateway: Gateway, board: str
) -> None:
    ok(cli(dev_env, "leaderboard", "create", board, "--task", str(PROBLEMS / "vectoradd"), "--gpu", "H100"))
    user = f"queued-{board}"
    submission = await enqueued(gateway, board, user)  # queued; no worker in this process takes it
    run_id = submission.public_run.run_id
    listed = flat(ok(cli(dev_env, "runs", "list", "--leaderboard", board, "--unfinished")))
    assert f"{run_id[:8]}" in listed and f"{user} {board} correct.py test H100 (not routed)" in listed
    assert run_id[:8] in ok(cli(dev_env, "runs", "list", "--user", user, "--limit", "1"))

    shown = flat(ok(cli(dev_env, "runs", "show", run_id[:8])))
    assert f"run {run_id}" in shown
    for line in ("state QUEUED", f"user {user}", f"leaderboard {board}", "file correct.py", "mode test"):
        assert line in shown, (line, shown)
    assert re.search(r"state QUEUED queued", shown)  # its first event

    cancelled = ok(cli(dev_env, "runs", "cancel", run_id[:8]))
    # a `gateway worker` elsewhere on the shared stack may have claimed it first: then it cancels the job
    assert f"run {run_id} was cancelled before it started" in cancelled or "cancel requested" in cancelled
    async with asyncio.timeout(120):
        finished = [event async for event in gateway.follow([run_id]) if event.kind == "finished"]
    assert [(e.state, e.kind) for e in finished] == [("CANCELLED", "finished")]
    record = await gateway.run(run_id, caller=OPERATOR)
    assert record.state == "CANCELLED" and record.finished_at is not None and record.passed is False

    shown = flat(ok(cli(dev_env, "runs", "show", run_id)))
    assert "state CANCELLED" in shown and "verdict failed" in shown
    assert re.search(r"finished CANCELLED", shown), shown
    again = cli(dev_env, "runs", "cancel", run_id)
    assert again.returncode == 0 and "has already finished (CANCELLED)" in again.stdout

    ok(submit_test(dev_env, board, user))
    done = next(r for r in await gateway.runs(user=user, caller=OPERATOR) if r.state == "COMPLETED")
    too_late = cli(dev_env, "runs", "cancel", done.run_id[:12])
    assert too_late.returncode == 1
    assert f"run {done.run_id} has already finished (COMPLETED)" in too_late.stdout
    shown = flat(ok(cli(dev_env, "runs", "show", done.run_id)))
    for line in ("state COMPLETED", "verdict passed", "partition alpha/h100", "attempt 1", "claimed 1"):
        assert line in shown, (line, shown)
    assert re.search(r"test seed: 4242; size: 127 pass", shown) and "routed to alpha/h100" in shown

    for wrong, message in (
        ("ffffffff-0000", "no run with id 'ffffffff-0000'"),
        ("%", "no run with id '%': give the id, or its first characters"),
        ("'; DROP TABLE runs; --", "give the id, or its first characters"),
    ):
        refused = cli(dev_env, "runs", "show", wrong)
        assert refused.returncode == 2 and message in refused.stdout, refused.stdout


async def test_a_drained_site_is_skipped_by_routing_until_resumed(
    dev_env: dict[str, str], stack_settings: Settings, tmp_path: Path
) -> None:
    """On a site of its own (a copy of alpha), so that no other test sees alpha drained."""
    dev_dir = Path(dev_env["GATEWAY_DEV_DIR"])
    name = f"drain{uuid.uuid4().hex[:8]}"
    sites = tmp_path / "sites"
    write_site(sites, "alpha", dev_site_text("alpha", dev_dir))
    write_site(sites, name, dev_site_text("alpha", dev_dir).replace("name: alpha", f"name: {name}"))
    env = cli_env(dev_env, GATEWAY_SITES_DIR=str(sites))
    settings = stack_settings.model_copy(update={"sites_dir": sites})

    out = ok(cli(dev_env, "sites", "drain", name, "--reason", "new [b]GPUs[/b]: back monday", env=env))
    assert f"site {name} drained: new [b]GPUs[/b]: back monday" in out
    try:
        health = flat(ok(cli(dev_env, "sites", "health", env=env)))
        assert f"{name} H100 drained: new [b]GPUs[/b]: back monday" in health
        assert "alpha H100 open" in health and "local (this machine) open" in health
        task = str(PROBLEMS / "vectoradd")
        args = ("submit", str(CORRECT), "--task", task, "--site", name, "--mode", "test")
        named = cli(dev_env, *args, env=env)
        assert named.returncode == 3
        assert f"refused: site {name} is drained by an admin (new [b]GPUs[/b]: back monday)" in named.stdout
        gateway = await Gateway.open(settings)
        try:
            with pytest.raises(UserError, match=rf"site {name} is drained by an admin \(new \[b\]GPUs"):
                await gateway.placement.route(name, "H100", mode="test")
            for _ in range(3):
                assert (await gateway.placement.route(None, "H100", mode="test")).site.name == "alpha"
        finally:
            await gateway.close()
    finally:
        out = ok(cli(dev_env, "sites", "resume", name, env=env))
    assert f"site {name} open to routing again" in out
    assert f"{name} H100 open" in flat(ok(cli(dev_env, "sites", "health", env=env)))
    gateway = await Gateway.open(settings)
    try:
        assert (await gateway.placement.route(name, "H100", mode="test")).site.name == name
    finally:
        await gateway.close()

    unknown = cli(dev_env, "sites", "drain", "nowhere", env=env)
    assert unknown.returncode == 2 and "unknown site 'nowhere'; known sites: alpha" in unknown.stdout
    local = cli(dev_env, "sites", "drain", "local", env=env)
    assert local.returncode == 2 and "the built-in local site cannot be drained" in local.stdout


def test_every_admin_command_has_help(dev_env: dict[str, str]) -> None:
    for group, commands in {
        "leaderboard": ("create", "list", "show", "delete", "limit", "deadline"),
        "runs": ("list", "show", "cancel", "resume"),
        "users": ("ban", "unban"),
        "sites": ("drain", "resume", "health"),
    }.items():
        listing = ok(cli(dev_env, group, "--help"))
        for command in commands:
            assert command in listing
            assert "Usage:" in ok(cli(dev_env, group, command, "--help"))
