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


def test_the_token_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DISCORD_TOKEN", "MTIz.secret-token-value")
    monkeypatch.setenv("GATEWAY_DISCORD_ADMIN_ROLE", "Judges")
    settings = BotSettings()
    assert settings.admin_role == "Judges"
    assert settings.token is not None and settings.token.get_secret_value() == "MTIz.secret-token-value"
    assert "secret-token-value" not in repr(settings) and "secret-token-value" not in str(settings)
