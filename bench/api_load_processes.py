"""The processes bench/api_load.py runs: the API servers (bench/api_load_server.py) and the load generator
(bench/api_load_client.py), each a Python process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.api_load_plan import CLIENT_LIMIT_S, SERVER_START_S, SERVERS


async def load(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run the client process on ``plan``; its results by phase name."""
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.api_load_client",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await asyncio.wait_for(client.communicate(json.dumps(plan).encode()), CLIENT_LIMIT_S)
    except TimeoutError:
        client.kill()
        await client.wait()
        raise RuntimeError(f"the load generator did not finish in {CLIENT_LIMIT_S} s") from None
    if client.returncode != 0:
        raise RuntimeError(f"the load generator failed (exit {client.returncode})")
    return {phase["name"]: phase for phase in json.loads(out)}


class Servers:
    """API server processes (bench/api_load_server.py) on one database; their URLs and CPU time."""

    def __init__(self) -> None:
        self.processes: list[asyncio.subprocess.Process] = []
        self.urls: list[str] = []

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server processes so far (Linux /proc)."""
        total = 0.0
        for process in self.processes:
            try:
                stat = Path(f"/proc/{process.pid}/stat").read_text(errors="replace")
                fields = stat.rsplit(")", 1)[1].split()
            except OSError:
                return math.nan
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


@contextlib.asynccontextmanager
async def servers(dsn: str, settings: dict[str, Any], profiles: list[Path] | None) -> AsyncIterator[Servers]:
    """SERVERS API server processes with these Settings fields; stopped (stdin closed) at the end."""
    running = Servers()
    try:
        for number in range(SERVERS):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.api_load_server",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            running.processes.append(process)
            profile = str(profiles[number]) if profiles is not None else None
            config = {"dsn": dsn, "settings": settings, "profile": profile}
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(config).encode() + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), SERVER_START_S)
            if not line:
                raise RuntimeError(
                    f"API server process {number + 1} did not start (exit {await process.wait()})"
                )
            running.urls.append(json.loads(line)["url"])
        yield running
    finally:
        for process in running.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in running.processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
