"""`gateway problems sync` against the dev stack's PostgreSQL: the fixture checkout (reference-kernels'
layout) becomes leaderboards with their deadlines and GPU types; the second sync changes nothing and says
so; a changed deadline is the one field updated. The database is shared: the boards get names of this
test's own and are deleted at its end."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.core.errors import RefusedError
from gateway.service.authority import Caller
from gateway.service.facade import OPERATOR, Gateway
from tests.integration.test_cli_admin import cli

pytestmark = pytest.mark.integration
CHECKOUT = Path(__file__).resolve().parents[1] / "fixtures" / "reference_kernels"
BOARDS = ["grouped-add", "vectoradd", "vectoradd-cu", "all-reduce", "sum4"]


async def test_a_checkout_syncs_once_and_the_second_sync_changes_nothing(
    dev_env: dict[str, str], gateway: Gateway, tmp_path: Path
) -> None:
    prefix = f"s{uuid.uuid4().hex[:6]}-"
    checkout = shutil.copytree(CHECKOUT, tmp_path / "reference-kernels")
    for competition in (checkout / "problems").glob("*.yaml"):
        competition.write_text(competition.read_text().replace("name: fx-", f"name: {prefix}"))
    names = [prefix + board for board in BOARDS]
    try:
        first = cli(dev_env, "problems", "sync", str(checkout))
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"{prefix}grouped-add: created" in first.stdout
        assert "note: no site offers GPU type(s) MI300X yet" in first.stdout
        assert "note: task.yml: unknown key 'display_order' kept but not used" in first.stdout
        assert "5 created, 0 updated, 0 unchanged" in first.stdout

        second = cli(dev_env, "problems", "sync", str(checkout))
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.count(": unchanged") == 5 and "created" not in second.stdout
        assert f"nothing changed: all 5 leaderboards already match {checkout}" in second.stdout

        boards = {name: await gateway.boards.get_leaderboard(name, caller=OPERATOR) for name in names}
        grouped, vectoradd = boards[f"{prefix}grouped-add"], boards[f"{prefix}vectoradd"]
        assert grouped.deadline == datetime(2031, 5, 1, 12, 0, tzinfo=UTC) and grouped.gpu_types == ["H100"]
        assert vectoradd.deadline == datetime(2031, 6, 30, tzinfo=UTC)  # the competition's
        assert vectoradd.gpu_types == ["B200", "H100"] and vectoradd.description == "Add two float32 vectors."
        assert boards[f"{prefix}all-reduce"].gpu_types == ["MI300X"]  # KernelBot's runner MI300x8
        assert boards[f"{prefix}sum4"].deadline is None
        task = await gateway.boards.task_of(f"{prefix}grouped-add", caller=OPERATOR)
        assert task.tests[0] == {"m": [96, 128], "g": 2, "seed": 1} and task.starter is not None

        dist = checkout / "problems" / "fixture_dist.yaml"
        dist.write_text(dist.read_text().replace('"2031-01-15"', '"2031-01-16 08:00"'))
        dry = cli(dev_env, "problems", "sync", str(checkout), "--competition", "fixture_dist", "--dry-run")
        assert f"{prefix}all-reduce: to update: deadline" in dry.stdout, dry.stdout + dry.stderr
        assert "dry run, nothing written: 0 to create, 1 to update, 1 unchanged" in dry.stdout
        kept = await gateway.boards.get_leaderboard(f"{prefix}all-reduce", caller=OPERATOR)
        assert kept.deadline == datetime(2031, 1, 15, tzinfo=UTC)
        third = cli(dev_env, "problems", "sync", str(checkout), "--competition", "fixture_dist")
        assert f"{prefix}all-reduce: updated: deadline" in third.stdout, third.stdout + third.stderr
        moved = await gateway.boards.get_leaderboard(f"{prefix}all-reduce", caller=OPERATOR)
        assert moved.deadline == datetime(2031, 1, 16, 8, 0, tzinfo=UTC)

        with pytest.raises(RefusedError, match="syncing competitions is for the gateway's admins"):
            await gateway.competition_sync.sync_checkout(checkout, caller=Caller("someone"))
    finally:
        for name in names:
            if await gateway.store.get_leaderboard(name) is not None:  # type: ignore[union-attr]
                await gateway.boards.delete_leaderboard(name, caller=OPERATOR)
