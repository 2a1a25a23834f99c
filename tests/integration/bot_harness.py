"""A bot under test: discord.py logged in to the fake Discord API, the real service and database, and a
worker in its own gateway (as another process would run it) that executes runs on the dev stack."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import discord
from pydantic import SecretStr

from bot.client import GatewayBot
from bot.settings import BotSettings
from gateway.config.settings import REPO_ROOT, Settings
from gateway.service.facade import Gateway
from tests.fake_discord import (
    ADMIN_ROLE_ID,
    GUILD_ID,
    IMPOSTOR_ROLE_ID,
    OTHER_ADMIN_ROLE_ID,
    OTHER_GUILD_ID,
    FakeDiscord,
    Member,
)
from tests.integration.scratch import migrated_store

# names unique to this test session: bans and rate limits recorded by an earlier session stay in the dev
# database, and must not decide this one
SESSION = uuid.uuid4().hex[:6]
ALICE = Member(930_000_000_000_000_001, f"alice-{SESSION}")
BOB = Member(930_000_000_000_000_002, f"bob-{SESSION}")
ADMIN = Member(930_000_000_000_000_003, f"root-{SESSION}", roles=[ADMIN_ROLE_ID])
# a role named like the admin role, with another id (in the served guild, and in an attacker's own)
IMPOSTOR = Member(930_000_000_000_000_004, f"mallory-{SESSION}", roles=[IMPOSTOR_ROLE_ID])
OUTSIDER = Member(930_000_000_000_000_005, f"eve-{SESSION}", roles=[OTHER_ADMIN_ROLE_ID])


def account(member: Member) -> str:
    """A Discord member's account in the gateway: keyed by their user id, never their name."""
    return f"discord:{member.id}"


# where runs are executed: a worker task beside the bot (its own service and pool), `gateway worker` in
# a process of its own, or nowhere (commands that only queue)
WorkerKind = Literal["task", "process", "none"]


async def _worker_process(settings: Settings) -> asyncio.subprocess.Process:
    env = dict(
        os.environ,
        GATEWAY_DATABASE_URL=settings.database_dsn() or "",
        GATEWAY_SITES_DIR=str(settings.sites_dir),
        GATEWAY_LOCAL_WORKDIR=str(settings.local_workdir),
        GATEWAY_WORKER_HEARTBEAT_S=str(settings.worker_heartbeat_s),
        GATEWAY_WORKER_STALE_S=str(settings.worker_stale_s),
    )
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli.main", "worker", env=env, cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class BotUnderTest:
    bot: GatewayBot
    discord: FakeDiscord
    gateway: Gateway

    async def command(
        self, member: Member, group: str, command: str, options: dict[str, Any] | None = None, **kw: Any
    ) -> str:
        """Deliver a slash command as Discord's gateway would; returns the interaction's token."""
        token, payload = self.discord.interaction(member, group, command, options, **kw)
        self.bot._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
        return token

    async def answer(self, token: str, timeout: float = 15.0) -> dict[str, Any]:
        """The interaction's response once it is more than "thinking…"."""
        return await self.discord.wait_for(  # type: ignore[no-any-return]
            lambda: (m := self.discord.original(token)) is not None and not m["loading"] and m, timeout
        )

    async def run(
        self, member: Member, group: str, command: str, options: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        return await self.answer(await self.command(member, group, command, options, **kw))

    async def followers_done(self, timeout: float = 120.0) -> None:
        await asyncio.wait_for(asyncio.gather(*list(self.bot.followers)), timeout)


@asynccontextmanager
async def bot_under_test(
    settings: Settings, monkeypatch: Any, *, worker: WorkerKind = "task"
) -> AsyncIterator[BotUnderTest]:
    dsn = settings.database_dsn()
    assert dsn is not None
    async with migrated_store(dsn, "test_bot") as (_, scratch_dsn):
        # a database of its own: no other test's (or engineer's) worker claims these runs
        scratch = settings.model_copy(update={"database_url": SecretStr(scratch_dsn)})
        async with bot_on(scratch, monkeypatch, worker) as under_test:
            yield under_test


@asynccontextmanager
async def bot_on(
    settings: Settings, monkeypatch: Any, worker: WorkerKind, edit_interval_s: float = 0.2
) -> AsyncIterator[BotUnderTest]:
    fake = FakeDiscord()
    base = await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", f"{base}/api/v10")
    gateway = await Gateway.open(settings)
    runner = await Gateway.open(settings)  # the worker's own service and pool, as in another process
    stop = asyncio.Event()
    work = asyncio.create_task(runner.worker().run(stop)) if worker == "task" else None
    process = await _worker_process(settings) if worker == "process" else None
    bot = GatewayBot(
        gateway,
        BotSettings(
            token="not-a-real-token",
            guild_ids=[GUILD_ID],
            admin_role_ids=[ADMIN_ROLE_ID],
            edit_interval_s=edit_interval_s,
            position_interval_s=0.3,
        ),
    )
    try:
        await bot.login("not-a-real-token")  # GET /users/@me, the application, then setup_hook: cogs + sync
        bot._connection.parse_guild_create(fake.guild_payload([ALICE, BOB, ADMIN, IMPOSTOR]))
        bot._connection.parse_guild_create(fake.guild_payload([OUTSIDER, ADMIN], OTHER_GUILD_ID))
        yield BotUnderTest(bot, fake, gateway)
    finally:
        await bot.close()
        stop.set()
        if work is not None:
            await asyncio.wait_for(work, 30)
        if process is not None:
            process.send_signal(signal.SIGTERM)  # a clean stop: it gives its claims back
            assert await asyncio.wait_for(process.wait(), 30) == 0
        await runner.close()
        await gateway.close()
        await fake.stop()
