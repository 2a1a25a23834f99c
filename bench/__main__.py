"""`python -m bench` (make bench): run every benchmark against the running dev stack."""

from __future__ import annotations

import asyncio

from rich.console import Console

from bench import e2e, ssh_reuse


async def main() -> None:
    console = Console(width=130)
    await ssh_reuse.main(console)
    await e2e.main(console)


if __name__ == "__main__":
    asyncio.run(main())
