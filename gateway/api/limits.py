"""Limits that keep one client from taking the gateway down: the size of a request body, and token-bucket
rate limits per client (the leaderboards' own rate limits, per user, leaderboard and mode, are the
service's: these are the API's flood guard in front of them)."""

from __future__ import annotations

import math
import time

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around the file


class TokenBucket:
    """``per_minute`` requests a minute per key: a minute's worth at once, then one every 60/per_minute s."""

    MAX_KEYS = 50_000

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if it was there, else the seconds until one will be."""
        now = time.monotonic()
        tokens, then = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self._buckets) >= self.MAX_KEYS:
            self._prune(now)
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0

    def _prune(self, now: float) -> None:
        """Forget keys whose bucket has filled up again (they are as good as new)."""
        full_after = self.capacity / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def too_many(what: str, wait: float) -> JSONResponse:
    """429 for ``what`` ("requests from 10.1.2.3"), with when to try again."""
    return JSONResponse(
        {"error": f"too many {what}: try again in {retry_after(wait)} s"},
        429,
        {"Retry-After": retry_after(wait)},
    )


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused with 413 and a message saying the
    limit: by its Content-Length before anything is read, or, sent without one, as soon as it passes."""

    def __init__(self, app: ASGIApp, max_bytes: int, file_limit: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = (
            f"the request is over {max_bytes} bytes: a submission file may be at most {file_limit} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"error": self.message}, 413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, self.message)  # answered by the app's handlers, as JSON
            return message

        await self.app(scope, counted, send)
