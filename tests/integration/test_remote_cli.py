"""The remote CLI as a user types it: `gateway login URL` and `gateway submit FILE --remote URL` in a
subprocess against the real HTTP API (uvicorn, a scratch database, a worker running the runs on the dev
stack's Slurm sites). Live lines, the result table, exit codes, --json, and the refusals that must say
what to do (no token, a revoked token, a file that is not UTF-8); the token never shows."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.service.facade import OPERATOR
from tests.conftest import PROBLEMS
from tests.integration.api_harness import ApiUnderTest, api_server

pytestmark = pytest.mark.integration
SOLUTIONS = PROBLEMS / "vectoradd" / "solutions"


@pytest.fixture(scope="module")
async def api(
    dev_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    settings = Settings(
        database_url=dev_env["GATEWAY_DATABASE_URL"],
        sites_dir=Path(dev_env["GATEWAY_SITES_DIR"]),
        local_workdir=tmp_path_factory.mktemp("runs"),
        worker_heartbeat_s=0.5,
        worker_stale_s=3.0,
    )
    async with api_server(settings) as under_test:
        yield under_test


class Cli:
    """`python -m gateway.cli.main` of this checkout, with a home (and credentials) of its own."""

    def __init__(self, home: Path, dev_env: dict[str, str]) -> None:
        self.home = home
        env = {k: v for k, v in os.environ.items() if k != "GATEWAY_TOKEN"}
        self.env = env | dev_env | {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")}
        self.env |= {"PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200", "NO_COLOR": "1"}

    @property
    def credentials(self) -> Path:
        return self.home / "config" / "kernel-gateway" / "credentials.json"

    async def __call__(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gateway.cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env | (env or {}),
            cwd=self.home,
            timeout=120,
        )


@pytest.fixture
def cli(tmp_path: Path, dev_env: dict[str, str]) -> Cli:
    return Cli(tmp_path, dev_env)


async def test_login_then_submit_shows_live_lines_and_the_result_table(api: ApiUnderTest, cli: Cli) -> None:
    board = await api.board(("H100",))
    token = await api.user_token("alice")
    login = await cli("login", api.url, "--token-stdin", "--json", stdin=token + "\n")
    assert login.returncode == 0, login.stdout + login.stderr
    assert json.loads(login.stdout) == {"url": api.url, "user": "alice"}
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.credentials.parent.stat().st_mode) == 0o700
    assert json.loads(cli.credentials.read_text()) == {api.url: token}

    done = await cli(
        "submit", str(SOLUTIONS / "correct.py"), "--remote", api.url + "/", "--leaderboard", board
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    runs = await api.gateway.runs(leaderboard=board, caller=OPERATOR)
    public, secret = next(r for r in runs if not r.secret), next(r for r in runs if r.secret)
    lines = out.splitlines()
    for run in (public, secret):  # both runs' live lines, as local submit prints them
        assert f"{run.run_id[:8]} queued" in lines
        assert any(line.startswith(f"{run.run_id[:8]} RUNNING") for line in lines)
    where = f"{public.site}/{public.partition} (H100), job {public.job_id}, run {public.run_id}"
    assert f"correct.py by alice on {where}" in " ".join(out.split())  # the title wraps at the table's width
    assert "secret rerun (hidden inputs): passed" in out
    assert "passed  score " in out and "(state COMPLETED)" in out
    assert out.count("│ test ") == 3 and out.count("│ benchmark ") == 2
    assert token not in out + done.stderr


async def test_a_failing_run_exits_1_and_json_prints_the_submission_locally_and_remotely(
    api: ApiUnderTest, cli: Cli
) -> None:
    board = await api.board(("H100",))
    token = {"GATEWAY_TOKEN": await api.user_token("bob")}  # no login: the environment's token
    scratch = {"GATEWAY_DATABASE_URL": api.settings.database_dsn() or ""}
    test = ("--leaderboard", board, "--mode", "test")  # one run each, no benchmarks: quicker
    wrong, remote, local = await asyncio.gather(
        cli("submit", str(SOLUTIONS / "wrong.py"), "--remote", api.url, *test, env=token),
        cli("submit", str(SOLUTIONS / "correct.py"), "--remote", api.url, *test, "--json", env=token),
        cli("submit", str(SOLUTIONS / "correct.py"), *test, "--gpu", "H100", "--json", env=scratch),
    )
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "failed  test (" in wrong.stdout and "mismatch found!" in wrong.stdout
    assert wrong.stdout.count("│ fail ") == 3

    for done in (remote, local):
        assert done.returncode == 0, done.stdout + done.stderr
        submission = json.loads(done.stdout)  # stdout is the document and nothing else
        assert submission["finished"] is True and submission["leaderboard"] == board
        [run] = submission["runs"]
        assert run["passed"] is True and run["mode"] == "test" and len(run["tests"]) == 3
    remote_doc, local_doc = json.loads(remote.stdout), json.loads(local.stdout)
    assert remote_doc["user"] == "bob" and local_doc["file_name"] == "correct.py"
    assert remote_doc.keys() == local_doc.keys()
    assert remote_doc["runs"][0].keys() == local_doc["runs"][0].keys()

    # bob reads and deletes his own submission over the API; carol can do neither
    sub, carol = remote_doc["submission_id"], {"GATEWAY_TOKEN": await api.user_token("carol")}
    code = await cli("runs", "code", sub, "--remote", api.url, env=token)
    assert code.returncode == 0 and code.stdout == (SOLUTIONS / "correct.py").read_text(), code.stderr
    theirs = await cli("runs", "code", sub, "--remote", api.url, env=carol)
    assert theirs.returncode != 0 and "is not yours to read" in theirs.stdout + theirs.stderr
    not_theirs = await cli("runs", "delete", sub, "--remote", api.url, env=carol)
    assert not_theirs.returncode != 0 and "only your own" in not_theirs.stdout + not_theirs.stderr
    deleted = await cli("runs", "delete", sub, "--remote", api.url, env=token)
    assert deleted.returncode == 0 and f"submission {sub} deleted" in deleted.stdout, deleted.stderr
    exported = await cli("leaderboard", "export", board, "--remote", api.url, "--format", "json", env=carol)
    assert json.loads(exported.stdout)["entries"] == []  # test runs never rank


async def test_refusals_say_what_to_do_and_exit_2(api: ApiUnderTest, cli: Cli, tmp_path: Path) -> None:
    board = await api.board(("H100",))
    correct = str(SOLUTIONS / "correct.py")

    latin1 = tmp_path / "latin1.py"
    latin1.write_bytes("# café\n".encode("latin-1"))
    no_token, bad_login, not_utf8, task, no_db = await asyncio.gather(
        cli("submit", correct, "--remote", api.url, "--leaderboard", board),
        cli("login", api.url, "--token-stdin", stdin="gwt_not-a-token\n"),
        cli("submit", str(latin1), "--remote", api.url, "--leaderboard", board),
        cli("submit", correct, "--remote", api.url, "--leaderboard", board, "--task", "problems/x"),
        cli("submit", correct, "--remote", api.url, "--no-db"),
    )
    assert no_token.returncode == 2
    assert f"no API token for {api.url}: run `gateway login {api.url}`" in no_token.stdout
    assert bad_login.returncode == 2 and "nothing was saved" in bad_login.stdout
    assert not cli.credentials.exists()
    assert (
        not_utf8.returncode == 2
        and "'latin1.py' is not UTF-8 text (byte 0xe9 at offset 5)" in not_utf8.stdout
    )
    assert task.returncode == 2 and "--task cannot be used with --remote" in task.stdout
    assert no_db.returncode == 2 and "--no-db cannot be used with --remote" in no_db.stdout

    token = await api.user_token("carol")
    assert (await cli("login", api.url, "--token-stdin", stdin=token)).returncode == 0
    assert await api.gateway.accounts.revoke_token("carol", caller=OPERATOR)
    revoked = await cli("submit", correct, "--remote", api.url, "--leaderboard", board)
    assert revoked.returncode == 2
    assert "unknown or was revoked" in revoked.stdout and f"run `gateway login {api.url}`" in revoked.stdout
    assert token not in revoked.stdout + revoked.stderr
    assert await api.gateway.runs(leaderboard=board, caller=OPERATOR) == []  # nothing was submitted
