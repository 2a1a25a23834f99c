"""One API server process of bench/api_load.py, as `gateway serve` runs one: `python -m bench.api_load_server`
reads its configuration as one JSON line on stdin (the database, Settings fields, a profile file or none),
serves the real app (gateway.http.api.create_app) under uvicorn on a free loopback port, prints {"url": …} as
a line, and serves until stdin closes. With a profile file, cProfile's stats of the whole process go there."""

from __future__ import annotations

import asyncio
import cProfile
import json
import sys
from typing import Any

from pydantic import SecretStr

from gateway.config.settings import Settings
from gateway.http.api import create_app
from gateway.http.api.server import serving
from gateway.service.facade import Gateway


async def serve(config: dict[str, Any]) -> None:
    settings = Settings(database_url=SecretStr(config["dsn"]), **config["settings"])
    gateway = await Gateway.open(settings)
    try:
        async with serving(create_app(gateway, settings)) as url:
            print(json.dumps({"url": url}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    finally:
        await gateway.close()


def main() -> None:
    config = json.loads(sys.stdin.readline())
    profiler = cProfile.Profile() if config.get("profile") else None
    if profiler is not None:
        profiler.enable()
    try:
        asyncio.run(serve(config))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(config["profile"])


if __name__ == "__main__":
    main()
