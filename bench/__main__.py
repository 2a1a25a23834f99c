"""`python -m bench` (make bench): every benchmark; `python -m bench --harness-only` needs no dev stack."""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console

from bench import e2e, harness_bench, ssh_reuse


async def main() -> None:
    console = Console(width=130)
    await harness_bench.main(console)
    if "--harness-only" in sys.argv:  # needs no dev stack
        return
    await ssh_reuse.main(console)
    await e2e.main(console)


if __name__ == "__main__":
    asyncio.run(main())
