"""The bot's settings: GATEWAY_DISCORD_* variables or ./.env (the token is never logged or shown)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_DISCORD_", extra="ignore")

    def __init__(self, **values: Any) -> None:
        super().__init__(_env_file=".env", **values)

    token: SecretStr | None = Field(default=None, description="the bot's token (Discord developer portal)")
    admin_role: str = Field(
        default="Leaderboard Admin", description="members with this role (its name or id) may use /admin"
    )
    guild_id: int | None = Field(
        default=None,
        description="sync the commands to this server only (they appear at once); unset: globally",
    )
    sync_commands: bool = Field(default=True, description="sync the slash commands at start-up")
    edit_interval_s: float = Field(
        default=1.0, ge=0, description="least time between two edits of a submission's message"
    )
    position_interval_s: float = Field(
        default=3.0, gt=0, description="how often a queued run's place in line is looked up again"
    )
