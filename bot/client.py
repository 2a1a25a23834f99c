"""The bot: a discord.py client whose slash commands are the cogs in bot/cogs, given the service and its
settings at start-up (discord.py's advanced start-up pattern: no globals)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import user_message
from bot.identity import served_guild
from bot.replies import reply
from bot.settings import BotSettings
from gateway.service.facade import Gateway

log = logging.getLogger(__name__)


class GatewayTree(app_commands.CommandTree["GatewayBot"]):
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Every command and autocomplete: only from the servers the bot serves (a server someone else
        invited it to, or a DM, gets nothing; commands are not synced there either)."""
        if served_guild(interaction, self.client.settings):
            return True
        log.warning("refused an interaction from guild %s (not configured)", interaction.guild_id)
        if interaction.type == discord.InteractionType.application_command:
            with contextlib.suppress(discord.HTTPException):
                await reply(interaction, "⛔ this bot serves only the servers its operators configured")
        return False

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        try:
            await reply(interaction, user_message(error))
        except discord.HTTPException as exc:
            log.warning("could not answer an interaction: %s", exc)


class GatewayBot(commands.Bot):
    def __init__(self, gateway: Gateway, settings: BotSettings) -> None:
        # slash commands need no privileged intents: not message content, not the member list
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            help_command=None,
            tree_cls=GatewayTree,
        )
        self.gateway = gateway
        self.settings = settings
        self.followers: set[asyncio.Task[Any]] = set()

    async def setup_hook(self) -> None:
        from bot.cogs.admin import AdminCog
        from bot.cogs.leaderboard import LeaderboardCog

        # the cogs get what they use, never the bot: they import nothing from this module
        await self.add_cog(LeaderboardCog(self.gateway, self.settings, self.follow))
        await self.add_cog(AdminCog(self.gateway, self.settings))
        if not self.settings.guild_ids:
            log.warning("no GATEWAY_DISCORD_GUILD_IDS: the bot serves no server and answers nothing")
        if self.settings.sync_commands:
            # to the configured servers only: never globally, where any server the bot joins gets them
            for guild_id in self.settings.guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d slash commands to guild %s", len(synced), guild_id)
            self.tree.clear_commands(guild=None)  # and none globally (an older version synced there)
            await self.tree.sync()

    def follow(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a submission's follower in the background (the command has answered already)."""
        task = asyncio.create_task(work)
        self.followers.add(task)
        task.add_done_callback(self._follower_done)
        return task

    def _follower_done(self, task: asyncio.Task[Any]) -> None:
        self.followers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a submission follower failed", exc_info=task.exception())

    async def close(self) -> None:
        # followers only edit messages: the runs go on in the workers and keep their results
        for task in list(self.followers):
            task.cancel()
        await asyncio.gather(*self.followers, return_exceptions=True)
        await super().close()
