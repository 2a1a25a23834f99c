"""A small HTTP/1.1 client for the load generator (bench/api_load_client.py): one keep-alive connection,
one request after another, written and read with asyncio streams. httpx spends ~3 ms of CPU per request,
which on this 2-core machine would be the client's own limit, not the servers'; this one a few tens of µs.
It reads what the API sends: a Content-Length body (uvicorn's answers to these requests) or none."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    """A multipart/form-data body: (its Content-Type, the bytes)."""
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, (file_name, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file_name}"\r\n'
            "Content-Type: text/x-python\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


class Connection:
    """One keep-alive connection to ``url`` (http://host:port)."""

    def __init__(self, url: str) -> None:
        split = urlsplit(url)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Answer:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None and self._writer is not None
        target = path + ("?" + urlencode(params) if params else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
            found = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                found[name.strip().lower()] = value.strip()
            length = int(found.get("content-length", "0"))
            content = await self._reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        if found.get("connection", "").lower() == "close":
            await self.close()
        return Answer(int(status_line.split(" ", 2)[1]), found, content)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
