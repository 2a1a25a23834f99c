"""Fakes at the one command seam: a transport that answers commands from a script and records them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.errors import CommandError
from gateway.runner import CompletedCommand

Responder = Callable[[list[str], str | None], tuple[int, str, str]]


class FakeTransport:
    def __init__(self, responder: Responder, home: str = "/home/gwrun") -> None:
        self.responder = responder
        self.home = home
        self.calls: list[list[str]] = []
        self.stdin: list[str | None] = []
        self.uploads: list[tuple[Path, str, list[str]]] = []
        self.files: dict[str, bytes] = {}

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float | None = 30.0,
        check: bool = True,
    ) -> CompletedCommand:
        self.calls.append(list(argv))
        self.stdin.append(stdin)
        code, out, err = self.responder(list(argv), stdin)
        done = CompletedCommand(tuple(argv), code, out, err)
        if check and code != 0:
            raise CommandError(argv, code, out, err)
        return done

    async def home_dir(self) -> str:
        return self.home

    async def upload_dir(self, local_dir: Path, remote_dir: str) -> None:
        names = sorted(str(p.relative_to(local_dir)) for p in local_dir.rglob("*") if p.is_file())
        self.uploads.append((local_dir, remote_dir, names))

    async def read_file(self, remote_path: str, max_bytes: int) -> bytes | None:
        data = self.files.get(remote_path)
        return None if data is None else data[:max_bytes]

    async def close(self) -> None:
        return None

    def commands(self, name: str) -> list[list[str]]:
        return [call for call in self.calls if call[0] == name]
