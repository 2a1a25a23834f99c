"""The HTTP API under test: `gateway serve`'s app under a real uvicorn on a free loopback port, the real
service on a scratch database of its own, and (optionally) a worker with its own service and pool, as
another process would run it, executing runs on the dev stack's Slurm sites."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pydantic import SecretStr

from gateway.config.settings import Settings
from gateway.http.api import create_app
from gateway.http.api.server import serving
from gateway.service.facade import OPERATOR, Gateway
from tests.integration.scratch import migrated_store

ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"


@dataclass
class ApiUnderTest:
    url: str  # http://127.0.0.1:PORT
    gateway: Gateway  # the server's own service
    settings: Settings

    async def user_token(self, name: str) -> str:
        return await self.gateway.accounts.create_token(name, caller=OPERATOR)

    async def board(
        self, gpus: tuple[str, ...] = ("H100",), problem: str = "vectoradd", visibility: str = "public"
    ) -> str:
        """A new leaderboard for one of problems/ on these GPU types; returns its name."""
        name = f"{problem}-{uuid.uuid4().hex[:8]}"
        task = await self.gateway.boards.load_task_directory(problem)
        await self.gateway.boards.create_leaderboard(
            name, task, list(gpus), visibility=visibility, caller=OPERATOR
        )
        return name


@asynccontextmanager
async def api_server(
    settings: Settings, *, worker: bool = True, http: str = "auto", **overrides: object
) -> AsyncIterator[ApiUnderTest]:
    """Serve the API on a scratch database; ``overrides`` are Settings fields (limits, for instance);
    ``http`` is uvicorn's HTTP implementation (auto, httptools, h11)."""
    dsn = settings.database_dsn()
    assert dsn is not None
    async with migrated_store(dsn, "test_api") as (_, scratch_dsn):
        scratch = settings.model_copy(
            update={
                "database_url": SecretStr(scratch_dsn),
                "admin_token": SecretStr(ADMIN_TOKEN),
                **overrides,
            }
        )
        async with api_on(scratch, worker=worker, http=http) as under_test:
            yield under_test


@asynccontextmanager
async def api_on(
    settings: Settings, *, worker: bool = True, http: str = "auto"
) -> AsyncIterator[ApiUnderTest]:
    gateway = await Gateway.open(settings)
    runner = await Gateway.open(settings) if worker else None
    stop = asyncio.Event()
    work = asyncio.create_task(runner.worker().run(stop)) if runner is not None else None
    try:
        async with serving(create_app(gateway, settings), http=http) as url:
            yield ApiUnderTest(url, gateway, settings)
    finally:
        stop.set()
        if work is not None:
            await asyncio.wait_for(work, 30)
        if runner is not None:
            await runner.close()
        await gateway.close()
