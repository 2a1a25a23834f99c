"""`python -m bench` (make bench): every benchmark; `python -m bench --harness-only` (the CLI's start-up,
the harness, the sandbox's cost and the compile cache) needs no dev stack; `python -m bench.cli_start` the
CLI's start-up alone; `python -m bench.ranking_bench` runs the ranking benchmark alone (PostgreSQL only),
`python -m bench.claim_fairness` fair claims (PostgreSQL only), `python -m bench.federation` routing,
claims and monitoring at 10 and 100 simulated sites (PostgreSQL only), `python -m bench.api_load` the HTTP API
under load (PostgreSQL only; `--profile` adds where the server spent its time)."""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console

from bench import (
    api_load,
    bot_latency,
    claim_fairness,
    cli_start,
    compile_cache,
    e2e,
    federation,
    harness_bench,
    pool_bench,
    queue_throughput,
    ranking_bench,
    result_latency,
    sandbox_cost,
    slurmctld_load,
    ssh_reuse,
    submit_latency,
    warm_pool,
)


async def main() -> None:
    console = Console(width=150)
    await cli_start.main(console)  # needs no dev stack
    await harness_bench.main(console)
    await sandbox_cost.main(console)  # needs bubblewrap, no dev stack
    await compile_cache.main(console)  # needs g++ and ninja, no dev stack
    await pool_bench.main(console)  # a warm pool's runner: needs bubblewrap, no dev stack
    if "--harness-only" in sys.argv:  # needs no dev stack
        return
    await ssh_reuse.main(console)
    await submit_latency.main(console)
    await result_latency.main(console)
    await e2e.main(console)
    await warm_pool.main(console)
    await slurmctld_load.main(console)
    await queue_throughput.main(console)
    await claim_fairness.main(console)  # PostgreSQL only: scratch databases of its own
    await ranking_bench.main(console)  # PostgreSQL only: a scratch database of its own
    await federation.main(console)  # PostgreSQL only: scratch databases, simulated Slurm sites
    await api_load.main(console)  # PostgreSQL only: the HTTP API loaded from a second process
    await bot_latency.main(console)  # PostgreSQL and the fake Discord API


if __name__ == "__main__":
    asyncio.run(main())
