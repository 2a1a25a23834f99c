"""`python -m bench` (make bench): run every benchmark against the running dev stack."""

from __future__ import annotations

import asyncio

from rich.console import Console

from bench import e2e, result_latency, slurmctld_load, ssh_reuse, submit_latency


async def main() -> None:
    console = Console(width=150)
    await ssh_reuse.main(console)
    await submit_latency.main(console)
    await result_latency.main(console)
    await e2e.main(console)
    await slurmctld_load.main(console)


if __name__ == "__main__":
    asyncio.run(main())
