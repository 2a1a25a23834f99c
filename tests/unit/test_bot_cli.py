"""`gateway bot` start-up: a missing token is a clear error, and the token never shows in a repr."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.settings import BotSettings
from gateway.cli.main import app


def test_without_a_token_the_bot_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.delenv("GATEWAY_DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]  # no ./.env with a token here
    result = CliRunner().invoke(app, ["bot"])
    assert result.exit_code == 2
    assert "set GATEWAY_DISCORD_TOKEN" in result.output


def test_the_token_is_never_shown_and_ids_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DISCORD_TOKEN", "MTIz.secret-token-value")
    monkeypatch.setenv("GATEWAY_DISCORD_GUILD_IDS", "111, 222")
    monkeypatch.setenv("GATEWAY_DISCORD_ADMIN_ROLE_IDS", "333")
    monkeypatch.setenv("GATEWAY_DISCORD_GUILD_ID", "444")  # the older name of one guild id: still read
    settings = BotSettings()
    assert settings.guild_ids == [111, 222, 444] and settings.admin_role_ids == [333]
    assert settings.token is not None and settings.token.get_secret_value() == "MTIz.secret-token-value"
    assert "secret-token-value" not in repr(settings) and "secret-token-value" not in str(settings)


def test_a_role_name_is_refused_with_what_to_set_instead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """An admin role given by name (the old setting) would let anyone who makes a role of that name in
    their own server administer the gateway: the bot refuses to start and says what to set."""
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    monkeypatch.setenv("GATEWAY_DISCORD_TOKEN", "MTIz.secret-token-value")
    monkeypatch.setenv("GATEWAY_DISCORD_ADMIN_ROLE", "Leaderboard Admin")
    result = CliRunner().invoke(app, ["bot"])
    assert result.exit_code == 2
    assert "GATEWAY_DISCORD_ADMIN_ROLE_IDS" in result.output and "secret-token-value" not in result.output


def test_without_guild_ids_the_bot_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    monkeypatch.setenv("GATEWAY_DISCORD_TOKEN", "MTIz.secret-token-value")
    monkeypatch.delenv("GATEWAY_DISCORD_GUILD_IDS", raising=False)
    monkeypatch.delenv("GATEWAY_DISCORD_GUILD_ID", raising=False)
    result = CliRunner().invoke(app, ["bot"])
    assert result.exit_code == 2 and "GATEWAY_DISCORD_GUILD_IDS" in result.output
