"""The bot's settings: GATEWAY_DISCORD_* variables or ./.env (the token is never logged or shown).

Who is an admin is decided by ids, never names: a member of one of ``guild_ids`` holding one of
``admin_role_ids``. The commands are synced to ``guild_ids`` only, and any interaction from elsewhere is
refused, so inviting the bot to another server (and making a role of the right name there) gains
nothing."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _ids(value: Any) -> Any:
    """'1, 2' (as environment variables are written) or a list, as a list of ints."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int):
        return [value]
    return value


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_DISCORD_", extra="ignore")

    def __init__(self, **values: Any) -> None:
        super().__init__(_env_file=".env", **values)

    token: SecretStr | None = Field(default=None, description="the bot's token (Discord developer portal)")
    guild_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="the servers (guild ids, comma-separated) the bot serves: its commands are synced to "
        "these only, and interactions from anywhere else are refused",
    )
    admin_role_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="role ids (comma-separated) whose members, in those servers, may use /admin and "
        "name a site; none: nobody is an admin on Discord",
    )
    guild_id: int | None = Field(default=None, description="an older name of one guild id: still read")
    admin_role: str | None = Field(
        default=None, description="no longer read: role names are not identity (use admin_role_ids)"
    )
    sync_commands: bool = Field(default=True, description="sync the slash commands at start-up")
    edit_interval_s: float = Field(
        default=1.0, ge=0, description="least time between two edits of a submission's message"
    )
    position_interval_s: float = Field(
        default=3.0, gt=0, description="how often a queued run's place in line is looked up again"
    )

    _split = field_validator("guild_ids", "admin_role_ids", mode="before")(_ids)

    @model_validator(mode="after")
    def _identity_by_ids(self) -> BotSettings:
        if self.admin_role is not None:
            raise ValueError(
                "GATEWAY_DISCORD_ADMIN_ROLE (a role's name) is no longer read: anyone can make a role of "
                "that name in a server of their own. Set GATEWAY_DISCORD_ADMIN_ROLE_IDS to the role's id "
                "(Server Settings > Roles > Copy Role ID) and GATEWAY_DISCORD_GUILD_IDS to your server's id"
            )
        if self.guild_id is not None and self.guild_id not in self.guild_ids:
            self.guild_ids.append(self.guild_id)
        return self
