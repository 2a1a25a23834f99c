"""Autocompletion shared by the cogs: leaderboard names, a leaderboard's GPU types, task directories, sites.

Each offers only what the caller may see: hidden boards, sites and task directories only to admins (an
autocomplete runs no command check of its own)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.identity import reader_of
from bot.settings import BotSettings
from gateway.core.errors import GatewayError
from gateway.service.facade import Caller, Gateway
from gateway.service.model import LOCAL_GPU_LABEL

log = logging.getLogger(__name__)
MAX_CHOICES = 25  # Discord shows at most 25


def _choices(values: list[str], current: str) -> list[app_commands.Choice[str]]:
    typed = current.lower()
    matches = [v for v in values if typed in v.lower()]
    return [app_commands.Choice(name=v[:100], value=v[:100]) for v in matches[:MAX_CHOICES]]


def _gateway(interaction: discord.Interaction) -> Gateway:
    gateway: Gateway = interaction.client.gateway  # type: ignore[attr-defined]
    return gateway


def _reader(interaction: discord.Interaction) -> Caller:
    settings: BotSettings = interaction.client.settings  # type: ignore[attr-defined]
    return reader_of(interaction, settings)


async def leaderboard_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    try:
        boards = await _gateway(interaction).boards.leaderboards(caller=_reader(interaction))
    except GatewayError as exc:  # an autocomplete that fails shows nothing; the command still works
        log.warning("leaderboard autocomplete: %s", exc)
        return []
    return _choices([b.name for b in boards], current)


async def gpu_types(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """The GPU types of the leaderboard already chosen in the command, else every type a site offers."""
    gateway = _gateway(interaction)
    board = getattr(interaction.namespace, "leaderboard", None)
    offered = [gpu for gpu in gateway.sites.known_gpu_types() if gpu != LOCAL_GPU_LABEL]
    if isinstance(board, str) and board:
        try:
            offered = (await gateway.boards.get_leaderboard(board, caller=_reader(interaction))).gpu_types
        except GatewayError:
            pass
    return _choices(offered, current)


async def task_directories(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    if not _reader(interaction).admin:
        return []
    return _choices(_gateway(interaction).boards.task_directories(), current)


async def site_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    if not _reader(interaction).admin:
        return []
    return _choices(sorted(_gateway(interaction).sites.configured), current)
