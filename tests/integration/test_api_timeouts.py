"""Slow clients are cut off, under uvicorn's httptools and h11 protocols alike, over raw sockets: a connection
that sends nothing, or trickles its headers a byte at a time, is answered 408 and closed once the header
time limit passes; one that trickles its body gets a 408 as JSON from the app (the body deadline) and is
closed, also when the route answered without reading the body; oversized headers are refused. Meanwhile
ordinary requests are served at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.config.settings import Settings
from tests.integration.api_harness import api_server

pytestmark = pytest.mark.integration
HEADER_S = 1.5
BODY_S = 2.0
SLACK_S = 2.5  # the event loop is shared with the server, PostgreSQL and the other tests' machines
DRIP_S = 0.1


class Slow:
    """A raw connection that writes ``start`` at once, then ``drip`` a byte at a time until the server
    closes; when it closed, and what it answered."""

    def __init__(self, url: str, start: bytes, drip: bytes) -> None:
        self.address = urlsplit(url)
        self.start, self.drip = start, drip

    async def run(self) -> tuple[float, bytes]:
        reader, writer = await asyncio.open_connection(self.address.hostname, self.address.port)
        began = time.monotonic()

        async def write() -> None:
            with contextlib.suppress(ConnectionError):
                writer.write(self.start)
                for byte in self.drip:
                    await writer.drain()
                    await asyncio.sleep(DRIP_S)
                    writer.write(bytes([byte]))

        writing = asyncio.create_task(write())
        answer = b""
        try:
            while chunk := await reader.read(65536):
                answer += chunk
        except ConnectionError:
            pass
        closed_after = time.monotonic() - began
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        writer.close()
        return closed_after, answer


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_slow_headers_and_bodies_are_cut_off_while_others_are_served(
    stack_settings: Settings, http: str
) -> None:
    async with api_server(
        stack_settings, worker=False, http=http, api_header_timeout_s=HEADER_S, api_body_timeout_s=BODY_S
    ) as api:
        board = await api.board(("H100",))
        token = await api.user_token("slow")
        form = (
            b"--b\r\nContent-Disposition: form-data; name=leaderboard\r\n\r\n"
            + board.encode()
            + b"\r\n--b--\r\n"
        )
        post = (
            b"POST /api/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: "
            + str(len(form)).encode()
            + b"\r\n\r\n"
        )
        unread = b"GET /api/leaderboards HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        clients = {
            "idle": Slow(api.url, b"", b""),
            "headers": Slow(api.url, b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a" * 1000),
            "keep-alive headers": Slow(
                api.url,
                b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\nGET /api/health HTTP/1.1\r\n",
                b"a" * 1000,
            ),
            "body": Slow(api.url, post, form),
            "unread body": Slow(api.url, unread, b"x" * 1000),
        }
        served: list[float] = []

        async def ordinary() -> None:
            async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
                for _ in range(15):
                    started = time.monotonic()
                    assert (await client.get("/api/leaderboards")).status_code == 200
                    served.append(time.monotonic() - started)
                    await asyncio.sleep(0.2)

        results = await asyncio.gather(*(c.run() for c in clients.values()), ordinary())
        outcome = dict(zip(clients, results[: len(clients)], strict=True))

    assert len(served) == 15 and max(served) < 1.5  # served at once throughout (a loaded machine: 1.5 s)
    for name in ("idle", "headers", "keep-alive headers"):
        closed_after, answer = outcome[name]  # type: ignore[misc]
        assert HEADER_S - 0.1 <= closed_after <= HEADER_S + SLACK_S, (name, closed_after)
        last = answer.split(b"HTTP/1.1 ")[-1]  # keep-alive: the first request was answered 200
        assert last.startswith(b"408") and b"headers did not arrive in 1.5 s" in last, (name, answer)
    closed_after, answer = outcome["body"]  # type: ignore[misc]
    status, body = status_and_body(answer)
    assert BODY_S - 0.1 <= closed_after <= BODY_S + SLACK_S, closed_after
    assert status == 408 and b"connection: close" in answer.lower()
    assert json.loads(body) == {"error": "the request's body did not arrive in 2 s"}
    closed_after, answer = outcome["unread body"]  # type: ignore[misc]
    assert status_and_body(answer)[0] == 200  # answered at once; closed when the body is late
    assert BODY_S - 0.1 <= closed_after <= BODY_S + 1.0 + SLACK_S, closed_after


async def test_oversized_headers_are_refused(stack_settings: Settings) -> None:
    async with api_server(stack_settings, worker=False) as api:
        closed_after, answer = await Slow(
            api.url, b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000, b""
        ).run()
        assert answer.startswith(b"HTTP/1.1 431") and closed_after < 5
        async with httpx.AsyncClient(base_url=api.url) as client:  # a 10 KB URL is still fine
            assert (await client.get("/api/leaderboards", params={"x": "y" * 10_000})).status_code == 200


async def test_a_body_without_content_length_is_refused_413_as_it_passes_the_limit(
    stack_settings: Settings,
) -> None:
    async with api_server(stack_settings, worker=False) as api:
        board = await api.board(("H100",))
        token = await api.user_token("chunky")
        limit = api.settings.max_submission_bytes

        async def chunks() -> AsyncIterator[bytes]:
            yield b"--b\r\nContent-Disposition: form-data; name=file; filename=k.py\r\n\r\n"
            for _ in range(limit // 8192 + 20):
                yield b"#" * 8192
            yield b"\r\n--b--\r\n"

        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            answer = await client.post(
                "/api/submissions",
                params={"leaderboard": board},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "multipart/form-data; boundary=b",
                },
                content=chunks(),
            )
            assert answer.status_code == 413, answer.text
            assert f"at most {api.settings.max_submission_bytes} bytes" in answer.json()["error"]
            assert (await client.get("/api/leaderboards")).status_code == 200
