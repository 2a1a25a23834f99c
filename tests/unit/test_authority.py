"""Authority and identity checks that need no database: who a local job's environment leaves out, what
names an account or a submission, the bot's settings of identity."""

from __future__ import annotations

import pytest

from gateway.authority import ANONYMOUS, OPERATOR, Caller, require_admin
from gateway.backends.local import job_environment
from gateway.errors import RefusedError, UserError
from gateway.validation import check_account, public_submission_key


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
