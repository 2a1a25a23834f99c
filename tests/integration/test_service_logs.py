"""The long-running commands' logs as an operator's collector reads them: `gateway worker` and `gateway
serve --log-format json` write one JSON object a line on stderr, each with a timestamp, level, logger and
message (uvicorn's request lines included); text lines start with an ISO timestamp; the database's
password is never among them. On a scratch database: a worker on the shared one would claim others' runs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.config.settings import REPO_ROOT
from tests.integration.scratch import migrated_store

pytestmark = pytest.mark.integration
TEXT_LINE = re.compile(r"(?P<ts>\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")


@pytest.fixture
async def scratch_dsn(dev_env: dict[str, str]) -> AsyncIterator[str]:
    async with migrated_store(dev_env["GATEWAY_DATABASE_URL"], "test_logs") as (_, dsn):
        yield dsn


@asynccontextmanager
async def command(dev_env: dict[str, str], dsn: str, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`gateway ARGS` in a process of its own on the scratch database; stopped with SIGTERM at the end."""
    env = os.environ | dev_env | {"GATEWAY_DATABASE_URL": dsn, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("GATEWAY_LOG_FORMAT", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli.main", *args, env=env, cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)


async def line_with(process: asyncio.subprocess.Process, text: str, seen: list[str]) -> None:
    """Read stderr into ``seen`` until a line holding ``text``."""
    assert process.stderr is not None
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        assert line, f"stderr ended before {text!r}: {seen}"
        seen.append(line.rstrip("\n"))
        if text in line:
            return


def entries(lines: list[str]) -> list[dict[str, str]]:
    parsed = [json.loads(line) for line in lines]
    for entry in parsed:
        assert {"ts", "level", "logger", "message"} <= entry.keys(), entry
        assert datetime.fromisoformat(entry["ts"]).tzinfo is not None
    return parsed


def password_of(dsn: str) -> str:
    password = urlsplit(dsn).password
    assert password, "the dev database has a password: the test checks it never shows"
    return password


async def test_worker_logs_json_lines_with_timestamps(dev_env: dict[str, str], scratch_dsn: str) -> None:
    seen: list[str] = []
    async with command(
        dev_env, scratch_dsn, "worker", "--log-format", "json", "--name", "log-test"
    ) as worker:
        await line_with(worker, "up to", seen)
        worker.send_signal(signal.SIGTERM)
        assert worker.stderr is not None
        seen += (await asyncio.wait_for(worker.stderr.read(), 30)).decode().splitlines()
    assert worker.returncode == 0, seen
    logged = entries(seen)
    # (a site's warning may come between: the shared stack is busy; every line is JSON all the same)
    assert [(e["level"], e["message"]) for e in logged if e["message"].startswith("worker log-test")] == [
        ("INFO", "worker log-test: up to 16 runs at once"),
        ("INFO", "worker log-test: stopped after 0 runs"),
    ]
    assert {e["level"] for e in logged} <= {"INFO", "WARNING"}, logged
    assert password_of(scratch_dsn) not in "\n".join(seen)


async def test_serve_logs_uvicorn_and_its_own_lines_through_one_format(
    dev_env: dict[str, str], scratch_dsn: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen: list[str] = []
    args = ("serve", "--port", str(port), "--log-format", "JSON")
    async with command(dev_env, scratch_dsn, *args) as server:
        await line_with(server, "Application startup complete", seen)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/api/health")).status_code == 200
        await line_with(server, "/api/health", seen)
    logged = entries(seen)
    loggers = {e["logger"] for e in logged}
    assert {"gateway.serve", "uvicorn.error", "uvicorn.access"} <= loggers, loggers
    assert any(e["message"] == f"serving on http://127.0.0.1:{port}/ (API docs at /docs)" for e in logged)
    assert password_of(scratch_dsn) not in "\n".join(seen)

    # text: each line starts with its timestamp
    text: list[str] = []
    async with command(dev_env, scratch_dsn, "serve", "--port", str(port)) as server:
        await line_with(server, "Application startup complete", text)
    assert any("gateway.serve: serving on" in line for line in text)
    for line in text:
        matched = TEXT_LINE.match(line)
        assert matched and datetime.fromisoformat(matched["ts"]).tzinfo is not None, line


async def test_a_worker_that_cannot_reach_its_database_logs_why_without_the_password(
    dev_env: dict[str, str],
) -> None:
    unreachable = "postgresql://gateway:not-the-real-password@127.0.0.1:1/gateway"
    async with command(dev_env, unreachable, "worker", "--log-format", "json") as worker:
        _, stderr = await asyncio.wait_for(worker.communicate(), 60)
    assert worker.returncode == 1
    lines = stderr.decode().splitlines()
    (entry,) = entries(lines)
    assert entry["level"] == "ERROR" and entry["message"].startswith("worker stopped: cannot connect")
    assert "not-the-real-password" not in stderr.decode()
