"""The Discord bot end to end, offline: commands arrive as Discord's gateway delivers them, the bot
answers the fake Discord API over HTTP, the real service and PostgreSQL store the submission, and a worker
runs it on the dev stack's Slurm site while the bot edits its message from LISTEN/NOTIFY events."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.service import Gateway
from gateway.settings import Settings
from gateway.tasks import load_task
from tests.conftest import PROBLEMS, solution
from tests.integration.bot_harness import ALICE, BOB, BotUnderTest, bot_under_test

pytestmark = pytest.mark.integration


def embed_text(message: dict[str, Any]) -> str:
    """Everything an embed shows, as one string."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
        parts.append((embed.get("footer") or {}).get("text", ""))
    return "\n".join(parts)


async def new_board(gateway: Gateway, gpus: list[str] | None = None) -> str:
    name = f"bot-{uuid.uuid4().hex[:8]}"
    await gateway.create_leaderboard(name, load_task(PROBLEMS / "vectoradd"), gpus or ["H100"])
    return name


async def submit(
    t: BotUnderTest, member: Any, board: str, file_name: str, data: bytes, mode: str = "leaderboard", gpu: str = "H100"
) -> str:
    attachment = t.discord.attach(file_name, data)
    return await t.command(
        member, "leaderboard", "submit", {"file": attachment, "leaderboard": board, "gpu": gpu, "mode": mode}
    )


async def test_a_submission_reaches_the_leaderboard_and_its_message_shows_result_and_rank(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_under_test(stack_settings, monkeypatch) as t:
        board = await new_board(t.gateway)
        token = await submit(t, ALICE, board, "correct.py", solution("vectoradd", "correct.py").encode())
        first = await t.answer(token)
        assert "queued" in embed_text(first), embed_text(first)
        await t.followers_done()
        message = t.discord.original(token)
        assert message is not None
        final = embed_text(message)
        assert "✅ passed" in final and "Score" in final and "#1** of 1" in final, final
        assert "Tests: 3/3 passed" in final and "Secret rerun (hidden inputs): passed" in final, final
        seen = [embed_text(version) for version in t.discord.history[int(message["id"])]]
        assert any("running" in s or "pending" in s for s in seen), seen

        view = await t.gateway.leaderboard(board)
        assert [e.user_name for e in view.ranking["H100"]] == ["alice"]
