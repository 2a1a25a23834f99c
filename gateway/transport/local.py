"""The local transport: commands as subprocesses and files on this machine (login nodes, the local site)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from gateway.errors import TransportError
from gateway.runner import CompletedCommand, SubprocessRunner


class LocalTransport:
    def __init__(self, runner: SubprocessRunner | None = None) -> None:
        self._runner = runner or SubprocessRunner()

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float | None = 30.0,
        check: bool = True,
    ) -> CompletedCommand:
        return await self._runner.run(argv, stdin=stdin, timeout=timeout, check=check)

    async def home_dir(self) -> str:
        return str(Path.home())

    async def upload_dir(self, local_dir: Path, remote_dir: str) -> None:
        try:
            await asyncio.to_thread(shutil.copytree, local_dir, remote_dir)
        except OSError as exc:
            raise TransportError(f"cannot copy {local_dir} to {remote_dir}: {exc}") from exc

    async def read_file(self, remote_path: str, max_bytes: int) -> bytes | None:
        def read() -> bytes | None:
            try:
                with open(remote_path, "rb") as handle:
                    return handle.read(max_bytes)
            except FileNotFoundError:
                return None

        try:
            return await asyncio.to_thread(read)
        except OSError as exc:
            raise TransportError(f"cannot read {remote_path}: {exc}") from exc

    async def close(self) -> None:
        return None
