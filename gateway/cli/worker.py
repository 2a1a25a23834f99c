"""`gateway worker`: claim queued runs from the database and see them through, until stopped."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from gateway.errors import GatewayError

console = Console()


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="runs followed at once (default: GATEWAY_WORKER_CONCURRENCY or 16)")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="worker name in the runs table (default: host:pid:random)")
    ] = None,
) -> None:
    """Process queued runs: claim them (any number of workers share the queue), submit, follow, record.

    SIGTERM or Ctrl-C stops it cleanly: its claims are given back and another worker re-attaches to the
    jobs, which keep running. A worker killed outright is taken over once its heartbeat goes stale."""
    import asyncio
    import signal

    from gateway.service import Gateway
    from gateway.settings import Settings
    from gateway.worker import Worker

    logging.getLogger("gateway").setLevel(logging.INFO)

    async def main() -> int:
        gateway = await Gateway.open(Settings())
        if gateway.store is None:
            console.print("[red]error:[/] a worker needs the database: set GATEWAY_DATABASE_URL")
            return 2
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        the_worker = Worker(gateway, name=name, concurrency=concurrency)

        async def show(run_id: str, message: str) -> None:
            console.print(Text.assemble((run_id[:8], "dim"), " ", message), highlight=False)

        console.print(
            f"worker {the_worker.name}: up to {the_worker.concurrency} runs at once", highlight=False
        )
        try:
            await the_worker.run(stop, on_event=show)
        finally:
            await gateway.close()
        console.print(f"worker {the_worker.name}: stopped after {the_worker.processed} runs", highlight=False)
        return 0

    try:
        code = asyncio.run(main())
    except GatewayError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
