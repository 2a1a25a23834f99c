"""The app under uvicorn: the server's options and connection time limits for `gateway serve`, and
``serving()``, which runs it inside a running event loop for as long as a block runs (the tests and the
load benchmark).

uvicorn has no time limit on a request's headers (an idle connection, or one that trickles its headers a
byte at a time, stays open for ever), and its keep-alive timer is cancelled by any byte that arrives. The
protocols here add two timers per connection: the headers must be complete within
``api_header_timeout_s`` of the connection (or of a keep-alive request's first byte), else 408 and the
connection is closed; and the body within ``api_body_timeout_s`` (plus a second, so the app's own 408 from
BodyLimit comes first), else the connection is closed, also when the app answered without reading it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.config.settings import Settings

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 64 * 1024  # a request line and headers larger than this: 431 (h11 has its own limit)
BODY_GRACE_S = 1.0  # the connection-level body limit comes after the app's own (408 as JSON)
KEEP_ALIVE_S = 5  # uvicorn's default: an idle keep-alive connection is closed after it


def _answer(status: bytes, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class _Deadlines:
    """The two timers of one connection; mixed into a uvicorn HTTP protocol."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    if TYPE_CHECKING:  # provided by the uvicorn protocol
        transport: asyncio.Transport
        loop: asyncio.AbstractEventLoop
        client: tuple[str, int] | None

    def _arm_headers(self) -> None:
        if self._header_timer is None:
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _headers_done(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._body_timer is None:
            self._body_timer = self.loop.call_later(self.body_timeout_s + BODY_GRACE_S, self._body_late)

    def _body_done(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _stop_timers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._body_done()

    def _between_responses(self) -> bool:
        """Whether no response is under way on this connection (so one may be written)."""
        cycle = getattr(self, "cycle", None)
        return cycle is None or bool(cycle.response_complete)

    def _close(self, status: bytes, message: str) -> None:
        self._stop_timers()
        if self.transport.is_closing():
            return
        log.info("closing the connection from %s: %s", self.client, message)
        if self._between_responses():
            self.transport.write(_answer(status, message))
        self.transport.close()

    def _headers_late(self) -> None:
        self._header_timer = None
        self._close(
            b"408 Request Timeout", f"the request's headers did not arrive in {self.header_timeout_s:g} s"
        )

    def _body_late(self) -> None:
        self._body_timer = None
        self._close(b"408 Request Timeout", f"the request's body did not arrive in {self.body_timeout_s:g} s")

    def _count_header_bytes(self, size: int) -> bool:
        """Count bytes that arrived while the headers are still incomplete; False (and 431) past the limit."""
        self._header_bytes += size
        if self._header_bytes <= MAX_HEADER_BYTES:
            return True
        self._close(
            b"431 Request Header Fields Too Large", f"the request's headers are over {MAX_HEADER_BYTES} bytes"
        )
        return False


class GuardedH11Protocol(_Deadlines, H11Protocol):
    """uvicorn's h11 protocol with the header and body deadlines (h11 tells the request's state)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_headers()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm_headers()  # the first bytes of a request
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm_headers()  # part of the next request came with the last one
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)

    def _follow(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._headers_done()
        elif state is not h11.IDLE:
            self._headers_done()
            self._body_done()


def _httptools_protocol() -> type[asyncio.Protocol] | None:
    if importlib.util.find_spec("httptools") is None:
        return None
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(_Deadlines, HttpToolsProtocol):
        """uvicorn's httptools protocol with the header and body deadlines, and a limit on header size
        (llhttp has none)."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm_headers()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._header_timer is not None and not self.transport.is_closing():
                self._count_header_bytes(len(data))

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_headers()

        def on_headers_complete(self) -> None:
            self._headers_done()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._body_done()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_timers()
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol


def guarded_protocol(settings: Settings, http: str = "auto") -> type[asyncio.Protocol]:
    """The HTTP protocol class for uvicorn (httptools when installed, as uvicorn's "auto"; or "h11")
    with the settings' header and body deadlines."""
    base = _httptools_protocol() if http in ("auto", "httptools") else None
    if base is None:
        if http == "httptools":
            raise ValueError("httptools is not installed")
        base = GuardedH11Protocol
    limits = {
        "header_timeout_s": settings.api_header_timeout_s,
        "body_timeout_s": settings.api_body_timeout_s,
    }
    return cast(type[asyncio.Protocol], type(base.__name__, (base,), limits))


def server_config(app: FastAPI, settings: Settings, http: str = "auto", **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the app: the guarded protocol, the keep-alive limit, then ``options``
    (host, port, log level, proxy headers)."""
    return uvicorn.Config(
        app, http=guarded_protocol(settings, http), timeout_keep_alive=KEEP_ALIVE_S, **options
    )


@asynccontextmanager
async def serving(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, http: str = "auto"
) -> AsyncIterator[str]:
    """Serve ``app`` (port 0: a free one) and yield its base URL; stop it at the end of the block."""
    settings: Settings = app.state.settings
    server = uvicorn.Server(server_config(app, settings, http, host=host, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start
            await asyncio.sleep(0.02)
        yield f"http://{host}:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
