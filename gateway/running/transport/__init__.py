"""Transports carry commands and files to a site. They know nothing of Slurm.

Every transport is a :class:`gateway.core.commands.CommandRunner` (the one command seam) plus file operations
and a line stream (``tail -F`` of a job's output, pushed to the gateway as the job writes it). A
:class:`ProcessTransport` also starts long-lived processes to talk to over stdin and stdout (the login agent,
gateway/running/backends/login_agent.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

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


class ProcessChannel(Protocol):
    """A long-lived process on the site: write to its stdin, read its stdout (stderr merged) by lines."""

    def write(self, data: bytes) -> None:
        """Send ``data`` to the process's stdin (buffered; never blocks)."""
        ...

    async def readline(self) -> bytes:
        """Its next line of output, with the newline; b"" once it ended or the connection went away."""
        ...

    def close(self) -> None:
        """Stop the process and free its channel (idempotent)."""
        ...


@runtime_checkable
class ProcessTransport(Transport, Protocol):
    async def open_process(self, argv: Sequence[str]) -> ProcessChannel | None:
        """Start ``argv`` with pipes to talk to; None when the site gives no channel to long-lived processes
        (an SSH site's ``login.tail_channels: 0``). Raises TransportError when the connection fails."""
        ...
