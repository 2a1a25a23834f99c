"""`gateway worker`: claim queued runs from the database and see them through, until stopped."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console

from gateway.cli.logopts import LogFormatOption, service_settings

console = Console(stderr=True)
log = logging.getLogger("gateway.service.queue_worker")


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="runs followed at once (default: GATEWAY_WORKER_CONCURRENCY or 16)")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="worker name in the runs table (default: host:pid:random)")
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Process queued runs: claim them (any number of workers share the queue), submit, follow, record.

    SIGTERM or Ctrl-C stops it cleanly: its claims are given back and another worker re-attaches to the
    jobs, which keep running. A worker killed outright is taken over once its heartbeat goes stale.
    Its log (each run's events included) goes to stderr, as --log-format says."""
    import asyncio
    import signal

    from gateway.core.errors import GatewayError
    from gateway.service.facade import Gateway

    settings = service_settings(log_format)

    async def main() -> int:
        gateway = await Gateway.open(settings)
        if gateway.store is None:
            console.print("[red]error:[/] a worker needs the database: set GATEWAY_DATABASE_URL")
            await gateway.close()
            return 2
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        the_worker = gateway.worker(name=name, concurrency=concurrency)

        async def show(run_id: str, message: str) -> None:
            log.info("run %s: %s", run_id, message)

        log.info("worker %s: up to %d runs at once", the_worker.name, the_worker.concurrency)
        try:
            await the_worker.run(stop, on_event=show)
        finally:
            await gateway.close()
        log.info("worker %s: stopped after %d runs", the_worker.name, the_worker.processed)
        return 0

    try:
        code = asyncio.run(main())
    except GatewayError as exc:  # the database or a site failed for good: the log says so, as the rest
        log.error("worker stopped: %s", exc)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
