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

from gateway.settings import Settings
from tests.conftest import PROBLEMS
from tests.integration.api_harness import ApiUnderTest, api_server
from tests.integration.bot_harness import BOB, bot_under_test
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
