"""/admin problems-sync through the offline Discord harness: an admin uploads a reference-kernels checkout
as an archive; the boards are made as `gateway problems sync` makes them, a second upload changes nothing,
members are refused and a hostile archive is refused before anything is written."""

from __future__ import annotations

import io
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.config.settings import Settings
from gateway.service.facade import OPERATOR
from tests.integration.bot_harness import ADMIN, BOB, bot_under_test
from tests.integration.test_bot import embed_text, evil_archive

pytestmark = pytest.mark.integration
CHECKOUT = Path(__file__).resolve().parents[1] / "fixtures" / "reference_kernels"


def checkout_archive(as_zip: bool = False) -> bytes:
    """The checkout as `git archive --prefix=reference-kernels/ HEAD` writes it (tar.gz or zip)."""
    buffer = io.BytesIO()
    if as_zip:
        with zipfile.ZipFile(buffer, "w") as archive:
            for path in sorted(CHECKOUT.rglob("*")):
                archive.write(path, f"reference-kernels/{path.relative_to(CHECKOUT)}")
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(CHECKOUT, arcname="reference-kernels")
    return buffer.getvalue()


async def test_admins_sync_an_uploaded_checkout_and_the_second_upload_changes_nothing(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_under_test(stack_settings, monkeypatch, worker="none") as t:  # a scratch database

        def upload(name: str, data: bytes) -> dict[str, Any]:
            return t.discord.attach(name, data)

        refused = await t.run(
            BOB, "admin", "problems-sync", {"archive": upload("rk.tar.gz", checkout_archive())}
        )
        assert "only the gateway's admins" in refused["content"], refused
        dry = await t.run(
            ADMIN,
            "admin",
            "problems-sync",
            {"archive": upload("rk.tar.gz", checkout_archive()), "dry_run": True},
        )
        assert "dry run, nothing written: 5 to create" in embed_text(dry), embed_text(dry)
        assert (await t.gateway.boards.leaderboards(caller=OPERATOR)) == []

        first = embed_text(
            await t.run(ADMIN, "admin", "problems-sync", {"archive": upload("rk.tar.gz", checkout_archive())})
        )
        assert "5 created, 0 updated, 0 unchanged (from rk.tar.gz)" in first, first
        assert "fx-grouped-add: created" in first and "note: no site offers GPU type(s) B200 yet" in first
        board = await t.gateway.boards.get_leaderboard("fx-grouped-add", caller=OPERATOR)
        assert board.deadline == datetime(2031, 5, 1, 12, 0, tzinfo=UTC) and board.gpu_types == ["H100"]

        second = await t.run(
            ADMIN, "admin", "problems-sync", {"archive": upload("rk.zip", checkout_archive(as_zip=True))}
        )
        assert "nothing changed: all 5 leaderboards already match rk.zip" in embed_text(second)
        one = await t.run(
            ADMIN, "admin", "problems-sync",
            {"archive": upload("rk.tar.gz", checkout_archive()), "competition": "fixture_dist"},
        )  # fmt: skip
        assert "all 2 leaderboards already match" in embed_text(one), embed_text(one)

        evil = await t.run(
            ADMIN, "admin", "problems-sync", {"archive": upload("evil.tar.gz", evil_archive())}
        )
        assert "would unpack outside the archive's folder" in evil["content"], evil
        text = await t.run(ADMIN, "admin", "problems-sync", {"archive": upload("rk.txt", b"x")})
        assert "upload the task directory as .zip" in text["content"], text
