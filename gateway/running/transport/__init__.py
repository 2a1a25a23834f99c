"""Transports carry commands and files to a site. They know nothing of Slurm.

Every transport is a :class:`gateway.core.commands.CommandRunner` (the one command seam) plus file operations
and a line stream (``tail -F`` of a job's output, pushed to the gateway as the job writes it).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Protocol

from gateway.core.commands import CommandRunner


class Transport(CommandRunner, Protocol):
    async def home_dir(self) -> str:
        """Absolute path of the login user's home on the site."""
        ...

    async def upload_dir(self, local_dir: Path, remote_dir: str) -> None:
        """Copy ``local_dir`` to ``remote_dir`` (which must not exist yet), keeping file modes."""
        ...

    async def read_file(self, remote_path: str, max_bytes: int) -> bytes | None:
        """The file's first ``max_bytes`` bytes, or None when it does not exist."""
        ...

    def stream_lines(self, argv: Sequence[str], *, max_line: int = 4096) -> AsyncGenerator[str, None]:
        """Run ``argv`` and yield its stdout line by line as it comes (each cut to ``max_line``); closing
        the iterator stops the command. Raises TransportError when the connection breaks."""
        ...

    async def close(self) -> None: ...
