"""Names a user controls never execute: a submission through site alpha whose file name, user name and
leaderboard name are full of shell syntax runs like any other, creates no marker file, and every name
comes back verbatim (in the CLI's report and in the database)."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from gateway.service.facade import OPERATOR, Gateway
from tests.conftest import PROBLEMS, solution
from tests.integration.test_site_check import cli

pytestmark = pytest.mark.integration


def hostile(tag: str, n: int, tmp: str = "/tmp/") -> str:
    """Every way a shell would run `touch` on a marker, in one string without a newline (``tmp=""``
    for a file name, which cannot hold a "/": its markers land wherever a shell would run)."""
    home = "~/" if tmp else ""
    return (
        f"$(touch {tmp}pwned-{tag}-{n}a) `touch {tmp}pwned-{tag}-{n}b` "
        f"'; touch {tmp}pwned-{tag}-{n}c; ' \"$(touch {home}pwned-{tag}-{n}d)\" ; touch pwned-{tag}-{n}e #"
    )


def markers(tag: str, *folders: Path) -> list[str]:
    found = subprocess.run(
        ["find", *map(str, folders), "-xdev", "-name", f"pwned-{tag}-*"], capture_output=True, text=True
    )
    return found.stdout.split()


async def test_hostile_names_are_data_not_commands(
    dev_env: dict[str, str], gateway: Gateway, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    file_name = f"sol {hostile(tag, 1, tmp='')}.py"
    user = f'o\'brien "bob" {hostile(tag, 2)}'
    board = f"it-{tag} 'quoted' \"board\" {hostile(tag, 3)}"
    submission = tmp_path / file_name
    submission.write_text(solution("vectoradd", "correct.py"))  # fine code: only the names are hostile
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    done = cli(
        dev_env,
        "submit",
        str(submission),
        "--task",
        str(PROBLEMS / "vectoradd"),
        "--leaderboard",
        board,
        "--site",
        "alpha",
        "--gpu",
        "H100",
        "--mode",
        "test",
        "--user",
        user,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "passed" in out
    assert f"{file_name} by {user} on alpha/" in " ".join(out.split()), out

    home = Path(dev_env["GATEWAY_DEV_DIR"]) / "home"
    assert markers(tag, Path("/tmp"), home, Path.cwd(), tmp_path) == []

    match = re.search(r"run ([0-9a-f-]{36})", out)
    assert match is not None and gateway.store is not None
    row = await gateway.store.get_run(match.group(1))
    assert row is not None and row.passed and row.state == "COMPLETED"
    assert (row.file_name, row.user_name) == (file_name, user)
    view = await gateway.boards.leaderboard(board, caller=OPERATOR)
    assert view.board.name == board
