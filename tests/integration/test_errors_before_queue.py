"""A submission that cannot run is refused at submit, in every front end, before anything is stored: the
CLI on this machine and with --remote, the HTTP API and the Discord bot each answer a syntax error with
the user's own file name and line, and a file of another language with what to rename it to; the
database holds no submission of that file afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.config.settings import Settings
from tests.conftest import PROBLEMS
from tests.integration.api_harness import ApiUnderTest, api_server
from tests.integration.bot_harness import BOB, bot_on, bot_under_test
from tests.integration.test_bot import ephemeral, new_board
from tests.integration.test_remote_cli import Cli

pytestmark = pytest.mark.integration
BROKEN = "import torch\n\n\ndef custom_kernel(data:\n    return data\n"
SYNTAX_ERROR = (
    "line 4: '(' was never closed: `def custom_kernel(data:` — fix it and submit again; nothing was queued"
)


def unique(suffix: str = ".py") -> str:
    return f"broken-{uuid.uuid4().hex[:8]}{suffix}"


async def stored(dsn: str, file_name: str) -> int:
    """How many submissions of this file name the database holds (runs go with their submission)."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM submissions WHERE file_name = $1", file_name))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def api(
    dev_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    settings = Settings(
        database_url=dev_env["GATEWAY_DATABASE_URL"],
        sites_dir=Path(dev_env["GATEWAY_SITES_DIR"]),
        local_workdir=tmp_path_factory.mktemp("runs"),
    )
    async with api_server(settings, worker=False) as under_test:
        yield under_test


async def test_the_local_cli_refuses_a_syntax_error_before_the_queue(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(tmp_path, dev_env)
    bad = tmp_path / unique()
    bad.write_text(BROKEN)
    wrong = tmp_path / unique(".cu")
    wrong.write_text("def custom_kernel(data):\n    return data\n")
    task = str(PROBLEMS / "vectoradd")
    refused = await cli("submit", str(bad), "--task", task, "--site", "alpha")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stdout.strip() == f"error: {bad.name}, {SYNTAX_ERROR}"
    assert "submission.py" not in refused.stdout
    renamed = await cli("submit", str(wrong), "--task", task, "--site", "alpha")
    assert renamed.returncode == 2
    assert f"rename it to '{wrong.stem}.py'" in renamed.stdout and "nothing was queued" in renamed.stdout
    for file in (bad, wrong):
        assert await stored(dev_env["GATEWAY_DATABASE_URL"], file.name) == 0


async def test_the_remote_cli_and_the_api_refuse_a_syntax_error_with_400(
    api: ApiUnderTest, dev_env: dict[str, str], tmp_path: Path
) -> None:
    board = await api.board(("H100",))
    token = await api.user_token(f"precheck-{uuid.uuid4().hex[:6]}")
    dsn = api.settings.database_dsn()
    assert dsn is not None
    names = [unique(), unique(".cu")]
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as client:
        syntax, language = [
            await client.post("/api/submissions", files={"file": (name, BROKEN)}, data={"leaderboard": board})
            for name in names
        ]
    assert syntax.status_code == 400 and syntax.json()["error"] == f"{names[0]}, {SYNTAX_ERROR}"
    assert language.status_code == 400 and "is not a Python file" in language.json()["error"]

    cli = Cli(tmp_path, dev_env)
    assert (await cli("login", api.url, "--token-stdin", stdin=token)).returncode == 0
    bad = tmp_path / unique()
    bad.write_text(BROKEN)
    remote = await cli("submit", str(bad), "--remote", api.url, "--leaderboard", board)
    assert remote.returncode == 2, remote.stdout + remote.stderr
    assert f"{bad.name}, {SYNTAX_ERROR}" in remote.stdout
    for name in [*names, bad.name]:
        assert await stored(dsn, name) == 0


async def test_the_bot_refuses_a_syntax_error_in_its_usual_reply(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_under_test(stack_settings, monkeypatch, worker="none") as t:
        board = await new_board(t.gateway)
        name = unique()
        options = {"file": t.discord.attach(name, BROKEN.encode()), "leaderboard": board, "gpu": "H100"}
        answer = await t.answer(await t.command(BOB, "leaderboard", "submit", {**options, "mode": "test"}))
        assert answer["content"] == f"⚠️ {name}, {SYNTAX_ERROR}" and ephemeral(answer)
        dsn = t.gateway.settings.database_dsn()
        assert dsn is not None and await stored(dsn, name) == 0


async def test_every_front_end_refuses_the_same_bad_upload_with_the_same_message(
    api: ApiUnderTest,
    monkeypatch: pytest.MonkeyPatch,
    dev_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """One intake (gateway/service/intake.py): the API, the bot, `gateway submit` and `gateway submit
    --remote` answer a file that is not UTF-8, one over the limit, an empty one, and a leaderboard ranking
    several GPU types given none, each with one message naming the user's file; nothing is stored."""
    limit = api.settings.max_submission_bytes
    board = await api.board(("H100", "L4"))
    token = await api.user_token(f"intake-{uuid.uuid4().hex[:6]}")
    cli = Cli(tmp_path, dev_env)
    assert (await cli("login", api.url, "--token-stdin", stdin=token)).returncode == 0
    good = b"def custom_kernel(data):\n    return data\n"
    cases = [
        (
            b"x = '\xe9t\xe9'\n",
            "'{}' is not UTF-8 text (byte 0xe9 at offset 5): save it as UTF-8 and submit it again",
        ),
        (b"#" * (limit + 1), f"'{{}}' is {limit + 1} bytes; the limit is {limit} bytes"),
        (b"  \n", "'{}' is empty"),
        (good, f"give a GPU type: leaderboard {board} ranks H100, L4"),
    ]
    dsn = api.settings.database_dsn()
    assert dsn is not None
    on_its_database = {"GATEWAY_DATABASE_URL": dsn}  # the API's scratch database, for the local CLI too
    async with bot_on(api.settings, monkeypatch, "none") as t:  # and for the bot
        for data, message in cases:
            name = unique()
            expected = message.format(name)
            (tmp_path / name).write_bytes(data)
            async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as c:
                by_api = await c.post(
                    "/api/submissions", files={"file": (name, data)}, data={"leaderboard": board}
                )
            assert by_api.json()["error"] == expected, by_api.text
            assert by_api.status_code == (413 if "limit" in expected else 400)
            options = {"file": t.discord.attach(name, data), "leaderboard": board, "mode": "test"}
            by_bot = await t.answer(await t.command(BOB, "leaderboard", "submit", options))
            assert by_bot["content"] == f"⚠️ {expected}", by_bot["content"]
            for where in (("--user", "intake-cli"), ("--remote", api.url)):
                by_cli = await cli(
                    "submit", str(tmp_path / name), "--leaderboard", board, *where, env=on_its_database
                )
                assert by_cli.returncode == 2, by_cli.stdout + by_cli.stderr
                assert by_cli.stdout.strip() == f"error: {expected}", (where, by_cli.stdout)
            assert await stored(dsn, name) == 0
