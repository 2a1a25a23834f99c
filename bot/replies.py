"""Answering an interaction, for the bot and its cogs alike: a reply that replaces whatever the answer
showed before, and work that defers the answer when it takes too long (Discord's 3 s)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import discord


async def reply(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    ephemeral: bool = True,
) -> None:
    """Answer an interaction, whether or not it was answered (or deferred) already: an edit replaces
    whatever the answer showed before (a "thinking…" placeholder, an earlier embed or file)."""
    if interaction.response.is_done():
        await interaction.edit_original_response(content=content, embed=embed, attachments=[])
    else:
        sent = embed if embed is not None else discord.utils.MISSING  # discord.py's "no embed"
        await interaction.response.send_message(content, embed=sent, ephemeral=ephemeral)


async def answer_in_time(
    interaction: discord.Interaction,
    work: Coroutine[Any, Any, Any],
    *,
    ephemeral: bool,
    within_s: float = 2.0,
) -> Any:
    """Await ``work``; if it takes longer than ``within_s`` defer the interaction first (Discord drops an
    interaction not answered in 3 s), so quick answers and errors can still be ephemeral."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if not done:
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
    return await task
