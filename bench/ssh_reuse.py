"""One shared SSH connection vs a fresh connection per command (what Open OnDemand does)."""

from __future__ import annotations

import asyncio

from rich.console import Console

from bench.common import Row, median_ms, report
from gateway.config.settings import Settings
from gateway.config.sites import load_sites
from gateway.running.transport.ssh import SSHTransport

REPEATS = 30


async def main(console: Console) -> list[Row]:
    site = load_sites(Settings().sites_dir)["alpha"]
    assert site.login is not None
    shared = SSHTransport("alpha", site.login)
    await shared.run(["true"])  # connect once, outside the timing

    async def fresh(argv: list[str]) -> None:
        transport = SSHTransport("alpha", site.login)  # type: ignore[arg-type]
        await transport.run(argv)
        await transport.close()

    rows = []
    for argv in (["true"], ["squeue", "-h"], ["sinfo", "-h"]):
        base = await median_ms(lambda a=argv: fresh(a), REPEATS)  # type: ignore[misc]
        reused = await median_ms(lambda a=argv: shared.run(a), REPEATS)  # type: ignore[misc]
        rows.append(Row(f"{' '.join(argv)} on the shared connection", "fresh connection each", base, reused))
    # 30 parallel commands: the channel cap queues them instead of failing (sshd MaxSessions 10).
    # Fresh connections go 10 at a time: sshd's MaxStartups (10) drops more unauthenticated ones.
    startups = asyncio.Semaphore(10)

    async def fresh_limited() -> None:
        async with startups:
            await fresh(["true"])

    burst = await median_ms(lambda: asyncio.gather(*(shared.run(["true"]) for _ in range(30))), 5)
    fresh_burst = await median_ms(lambda: asyncio.gather(*(fresh_limited() for _ in range(30))), 3)
    rows.append(
        Row(
            "30 parallel `true`, shared, channels capped",
            "30 fresh connections, 10 at a time",
            fresh_burst,
            burst,
        )
    )
    await shared.close()
    report("ssh_reuse: command latency over SSH (median)", rows, console)
    return rows
