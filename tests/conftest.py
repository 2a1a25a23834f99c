"""Shared fixtures. Integration tests use the real dev stack; the session starts it when it is down
and, when it started it, stops it at the end and checks that no daemon is left behind."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT, Settings

PROBLEMS = REPO_ROOT / "problems"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Every run of the harness confines submitted code with bubblewrap, unit tests' runs too: install it
    (with the dev stack's other Debian packages) when this machine lacks it."""
    if shutil.which("bwrap") is None:
        from gateway.devstack.packages import ensure_packages

        ensure_packages()


def solution(problem: str, name: str) -> str:
    return (PROBLEMS / problem / "solutions" / name).read_text()


@pytest.fixture(scope="session")
def dev_env() -> Iterator[dict[str, str]]:
    from gateway.devstack import DevStack

    stack = DevStack()
    started_here = not stack.is_up()
    stack.up()  # when it runs already, this only applies new migrations
    yield stack.env()
    if started_here and os.environ.get("GATEWAY_KEEP_STACK") != "1":
        stack.down()
        assert all(part.state in ("stopped", "ready", "missing") for part in stack.status())
        assert not stack.leftovers(), f"processes of the dev stack left after down: {stack.leftovers()}"


@pytest.fixture
def stack_settings(dev_env: dict[str, str], tmp_path: Path) -> Settings:
    return Settings(
        database_url=dev_env["GATEWAY_DATABASE_URL"],
        sites_dir=Path(dev_env["GATEWAY_SITES_DIR"]),
        local_workdir=tmp_path / "runs",
        # claims go stale in seconds, so tests see takeovers without waiting the production 45 s
        worker_heartbeat_s=0.5,
        worker_stale_s=3.0,
        # the shared dev database keeps what earlier sessions left unfinished under the tests' fixed user
        # names; the defaults themselves are tested in scratch databases (test_refusals.py)
        max_unfinished_runs_per_user=10_000,
        submissions_per_minute=10_000,
    )


@pytest.fixture
async def gateway(stack_settings: Settings) -> AsyncIterator[object]:
    from gateway.service.facade import Gateway

    gw = await Gateway.open(stack_settings)
    yield gw
    await gw.close()
