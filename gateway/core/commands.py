"""The one seam every command goes through: argv, stdin, timeout, check.

Transports implement :class:`CommandRunner` (a local subprocess, an SSH channel); unit tests fake it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.core.errors import CommandError


@dataclass(frozen=True)
class CompletedCommand:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    def check(self) -> CompletedCommand:
        if self.exit_code != 0:
            raise CommandError(self.argv, self.exit_code, self.stdout, self.stderr)
        return self


class CommandRunner(Protocol):
    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | bytes | None = None,
        timeout: float | None = 30.0,
        check: bool = True,
    ) -> CompletedCommand:
        """Run ``argv`` (never through a shell) and return its record; raise CommandError when
        ``check`` is set and it exits non-zero, and always when it outlives ``timeout`` seconds."""
        ...


class SubprocessRunner:
    """Runs commands on this machine with asyncio subprocesses."""

    def __init__(self, env: Mapping[str, str] | None = None, cwd: str | None = None) -> None:
        self._env = dict(env) if env is not None else None
        self._cwd = cwd

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | bytes | None = None,
        timeout: float | None = 30.0,
        check: bool = True,
    ) -> CompletedCommand:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,  # so a timeout kills the whole process group
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(data), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = await proc.communicate()
            raise CommandError(
                argv, None, out.decode(errors="replace"), err.decode(errors="replace"), timed_out=True
            ) from None
        done = CompletedCommand(
            tuple(argv), proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )
        return done.check() if check else done
