"""Who a Discord interaction comes from, as the service's Caller (gateway.service.authority): the account of
the Discord user id (their name is only shown), an admin only in a configured guild holding a configured
role id. Every command and autocomplete asks here; the service decides what the caller may do."""

from __future__ import annotations

import discord

from bot.settings import BotSettings
from gateway.service.facade import Caller, Gateway


def served_guild(interaction: discord.Interaction, settings: BotSettings) -> bool:
    """Whether the interaction comes from a server the bot serves (never a DM or another server)."""
    return interaction.guild_id is not None and interaction.guild_id in settings.guild_ids


def is_admin(interaction: discord.Interaction, settings: BotSettings) -> bool:
    """A member of a served guild holding one of the admin role ids (roles of that guild only: a role's
    name counts for nothing)."""
    if not served_guild(interaction, settings) or not settings.admin_role_ids:
        return False
    roles = getattr(interaction.user, "roles", None) or []
    guild_id = interaction.guild_id
    return any(
        role.id in settings.admin_role_ids and getattr(role.guild, "id", None) == guild_id for role in roles
    )


async def caller_of(interaction: discord.Interaction, gateway: Gateway, settings: BotSettings) -> Caller:
    """The caller with their account (made on first sight, its shown name refreshed)."""
    account = await gateway.accounts.discord_user(interaction.user.id, interaction.user.name)
    return Caller(account.name, is_admin(interaction, settings))


def reader_of(interaction: discord.Interaction, settings: BotSettings) -> Caller:
    """The caller without their account, for reading (autocomplete: no database write per keystroke)."""
    return Caller(None, is_admin(interaction, settings))
