"""Fakes at the one command seam: a transport that answers commands from a script and records them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.config.site_parts import LoginConfig, PartitionConfig
from gateway.config.sites import SiteConfig
from gateway.config.tasks import TaskDefinition
from gateway.core.commands import CompletedCommand
from gateway.core.errors import CommandError

Responder = Callable[[list[str], str | bytes | None], tuple[int, str, str]]


class FakeTransport:
    def __init__(self, responder: Responder, home: str = "/home/gwrun") -> None:
        self.responder = responder
        self.home = home
        self.calls: list[list[str]] = []
        self.stdin: list[str | bytes | None] = []
        self.streams: dict[str, list[str]] = {}  # the last argument of a streamed command -> its lines
        self.fail_next: dict[str, list[Exception]] = {}  # command name -> raised by its next calls, in order
        self.uploads: list[tuple[Path, str, list[str]]] = []
        self.files: dict[str, bytes] = {}

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | bytes | None = None,
        timeout: float | None = 30.0,
        check: bool = True,
    ) -> CompletedCommand:
        self.calls.append(list(argv))
        self.stdin.append(stdin)
        if self.fail_next.get(argv[0]):
            raise self.fail_next[argv[0]].pop(0)
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

    async def stream_lines(self, argv: Sequence[str], *, max_line: int = 4096) -> AsyncGenerator[str, None]:
        self.calls.append(list(argv))
        for line in self.streams.get(argv[-1], []):
            yield line[:max_line]

    async def close(self) -> None:
        return None

    def commands(self, name: str) -> list[list[str]]:
        return [call for call in self.calls if call[0] == name]


def gamma_site(setup: list[str] | None = None, **partition: Any) -> SiteConfig:
    """A made-up Slurm site with one partition (fields of PartitionConfig override the H100 defaults)."""
    fields = {"name": "h100", "gpu_type": "H100", "gres": "gpu:h100:1"} | partition
    return SiteConfig(
        name="gamma",
        login=LoginConfig(host="h", user="u", identity_file=Path("/k"), known_hosts=Path("/kh")),
        workdir="runs",
        setup=setup or [],
        partitions=[PartitionConfig(**fields)],
    )


def tiny_task(**changes: Any) -> TaskDefinition:
    """A task with one test and no benchmarks unless ``changes`` say otherwise."""
    fields: dict[str, Any] = {
        "name": "t",
        "files": {"submission.py": "@SUBMISSION@"},
        "submission_name": "submission.py",
        "tests": [{"size": 1}],
        "benchmarks": [],
        "ranking_by": "geom",
        "timeouts": {"test": 10},
    } | changes
    return TaskDefinition(**fields)
