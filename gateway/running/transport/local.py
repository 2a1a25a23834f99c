"""The local transport: commands as subprocesses and files on this machine (login nodes, the local site)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path

from gateway.core.commands import CompletedCommand, SubprocessRunner
from gateway.core.errors import TransportError
from gateway.running.transport import ProcessChannel


class LocalTransport:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(env) if env is not None else None
        self._runner = SubprocessRunner(env=self._env)

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | bytes | None = None,
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

    async def stream_lines(self, argv: Sequence[str], *, max_line: int = 4096) -> AsyncGenerator[str, None]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=self._env,
                start_new_session=True,
                limit=max(max_line * 2, 64 * 1024),
            )
        except OSError as exc:
            raise TransportError(f"cannot start {argv[0]}: {exc}") from exc
        assert proc.stdout is not None
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError:  # a line past the buffer limit: skip what is left of it
                    line = (await proc.stdout.read(max_line))[:max_line] + b"\n"
                if not line:
                    return
                yield line.decode(errors="replace").rstrip("\n")[:max_line]
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            # drain to EOF so the pipe, and with it the subprocess transport, is closed before we return
            with contextlib.suppress(OSError, ValueError):
                await proc.stdout.read()
            await proc.wait()

    async def open_process(self, argv: Sequence[str]) -> ProcessChannel | None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
                limit=1 << 20,
            )
        except OSError as exc:
            raise TransportError(f"cannot start {argv[0]}: {exc}") from exc
        return _LocalProcess(proc)

    async def close(self) -> None:
        return None


class _LocalProcess:
    """A subprocess started by LocalTransport.open_process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        self._stdin = proc.stdin
        self._stdout = proc.stdout

    def write(self, data: bytes) -> None:
        if not self._stdin.is_closing():
            self._stdin.write(data)

    async def readline(self) -> bytes:
        try:
            return await self._stdout.readline()
        except (ValueError, OSError):  # a line past the buffer limit, or the pipe broke
            return b""

    def close(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
        self._stdin.close()
