"""`gateway serve`: the HTTP API and web pages (FastAPI under uvicorn), optionally with a worker."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from gateway.cli.common import fail
from gateway.cli.logopts import LogFormatOption, service_settings

log = logging.getLogger("gateway.serve")


def serve(
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8080,
    with_worker: Annotated[
        bool, typer.Option("--with-worker", help="also process queued runs in this process")
    ] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(help="proxies whose X-Forwarded-For is trusted (rate limits count the real client)"),
    ] = "127.0.0.1",
    log_format: LogFormatOption = None,
) -> None:
    """Serve the HTTP API (/api, OpenAPI at /docs), the web leaderboard (/) and Prometheus metrics
    (/metrics), until Ctrl-C or SIGTERM.

    Submitting needs a user's API token (`gateway users token NAME`); admin endpoints need
    GATEWAY_ADMIN_TOKEN. Runs are processed by `gateway worker` processes, or by this one with
    --with-worker. Its log (uvicorn's requests included) goes to stderr, as --log-format says."""
    import asyncio
    import contextlib

    import uvicorn

    from gateway.core.errors import GatewayError
    from gateway.http.api import create_app
    from gateway.http.api.server import server_config
    from gateway.service.facade import Gateway

    settings = service_settings(log_format)
    if settings.database_dsn() is None:
        fail("the HTTP API needs the database: set GATEWAY_DATABASE_URL (see `gateway dev env`)")
    if settings.admin_token is None:
        log.warning("GATEWAY_ADMIN_TOKEN is not set: the admin endpoints refuse every request")

    async def main() -> None:
        gateway = await Gateway.open(settings)
        config = server_config(
            create_app(gateway, settings),
            settings,
            host=host,
            port=port,
            log_config=None,  # uvicorn's loggers propagate to gateway.core.logs' handler, at its levels
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips,
        )
        server = uvicorn.Server(config)
        stop = asyncio.Event()
        worker_task = None
        if with_worker:
            worker_task = asyncio.create_task(gateway.worker().run(stop))
        log.info("serving on http://%s:%d/ (API docs at /docs)", host, port)
        try:
            await server.serve()
        finally:
            stop.set()
            if worker_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await gateway.close()

    try:
        asyncio.run(main())
    except GatewayError as exc:  # the log says it, as it says the rest
        log.error("serve stopped: %s", exc)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
