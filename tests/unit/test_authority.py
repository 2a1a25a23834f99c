"""Authority and identity checks that need no database: who a local job's environment leaves out, what
names an account or a submission, the bot's settings of identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.settings import Settings
from gateway.core.errors import RefusedError, UserError
from gateway.core.validation import check_account, public_submission_key
from gateway.running.backends.local import job_environment
from gateway.service.authority import ANONYMOUS, OPERATOR, Caller, require_admin
from gateway.service.facade import Gateway


def test_a_local_job_never_sees_the_workers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://gateway:hunter2@db/gateway")
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    environment = job_environment()
    assert "hunter2" not in str(environment) and "s3cret" not in str(environment)
    assert "SSH_AUTH_SOCK" not in environment and environment["CUDA_VISIBLE_DEVICES"] == "0"
    assert "PATH" in environment


def test_only_callers_with_an_admins_rights_pass_and_users_act_only_for_themselves() -> None:
    require_admin(OPERATOR, "no")
    for caller in (ANONYMOUS, Caller("alice")):
        with pytest.raises(RefusedError, match="no") as refused:
            require_admin(caller, "no")
        assert refused.value.reason == "forbidden"
    assert Caller("alice").may_act_for("alice") and not Caller("alice").may_act_for("bob")
    assert Caller("root", admin=True).may_act_for("bob") and not ANONYMOUS.may_act_for("alice")


def test_submissions_are_named_by_public_ids_and_numbers_only_for_admins() -> None:
    public = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert public_submission_key(public, by_number=False) == public
    assert public_submission_key(public.upper(), by_number=False) == public
    assert public_submission_key("42", by_number=False) is None
    assert public_submission_key("42", by_number=True) == 42
    assert public_submission_key(42, by_number=True) == 42
    for hostile in ["0", "-1", str(2**63), "9" * 30, "4\u0662", "١٢", "1e3", "", "x" * 10_000, "' OR 1=1"]:
        assert public_submission_key(hostile, by_number=True) is None, hostile


def test_account_names_in_discords_namespace_are_exactly_a_user_id() -> None:
    check_account("discord:930000000000000001")
    check_account("alice")
    for bad in ["discord:alice", "discord:", "discord:1 ", "discord:12345678901234567890123"]:
        with pytest.raises(UserError, match="discord"):
            check_account(bad)


async def test_hostile_discord_ids_and_account_names_are_refused_before_the_database(tmp_path: Path) -> None:
    """`gateway users link` and the bot's accounts take a Discord id and a name: out-of-range ids and
    names outside the 'discord:<digits>' form are refused before anything is stored (no store here)."""
    gateway = Gateway(Settings(sites_dir=tmp_path, local_workdir=tmp_path), {}, None)
    for bad_id in (0, -1, 2**64, 10**30):
        with pytest.raises(UserError, match="is not a Discord user id"):
            await gateway.accounts.link_discord("old-name", bad_id, caller=OPERATOR)
        with pytest.raises(UserError, match="is not a Discord user id"):
            await gateway.accounts.discord_user(bad_id, "mallory")
    with pytest.raises(UserError, match="discord"):
        await gateway.accounts.link_discord("discord:../../x", 1, caller=OPERATOR)
    with pytest.raises(RefusedError, match="for the gateway's admins"):
        await gateway.accounts.link_discord("old-name", 1, caller=Caller("discord:1"))


@pytest.mark.parametrize("garbage", ["1; DROP TABLE users", "12abc", "1e3", "0x10"])
def test_guild_and_role_ids_that_are_not_numbers_stop_the_bot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, garbage: str
) -> None:
    from typer.testing import CliRunner

    from gateway.cli.main import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_DISCORD_TOKEN", "MTIz.secret-token-value")
    monkeypatch.setenv("GATEWAY_DISCORD_GUILD_IDS", f"1,{garbage}")
    monkeypatch.setenv("GATEWAY_DISCORD_ADMIN_ROLE_IDS", garbage)
    result = CliRunner().invoke(app, ["bot"])
    assert result.exit_code == 2 and "secret-token-value" not in result.output, result.output
