"""Limits that keep one client from taking the gateway down, holding across every API process: token-bucket
rate limits per client and a cap on event streams per client and in all (both kept in PostgreSQL by the
service), and the size of a request body and the time to send it. The leaderboards' own rate limits, per
user, leaderboard and mode, are the service's: these are the API's flood guard in front of them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
import uuid

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config.settings import Settings
from gateway.core.errors import GatewayError, StoreError
from gateway.http.api.auth import is_admin_token, user_for_token
from gateway.service.facade import Gateway
from gateway.service.limits import SharedLimits

log = logging.getLogger(__name__)
MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around the file
STORE_AWAY_LOG_EVERY_S = 60.0


class TokenBucket:
    """``per_minute`` requests a minute per key: a minute's worth at once, then one every 60/per_minute s,
    in this process's memory. The API's buckets are in PostgreSQL (SharedBucket); this one mirrors what
    the database said of each key, so that a client known to be out of tokens is refused without asking."""

    MAX_KEYS = 50_000

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def _tokens(self, key: str, now: float) -> float:
        tokens, then = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - then) * self.rate)

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if it was there, else the seconds until one will be."""
        now = time.monotonic()
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self.record(key, tokens - 1.0, now)
        return 0.0

    def wait(self, key: str) -> float:
        """The seconds until ``key`` has a token (0.0: it has one now); takes nothing."""
        tokens = self._tokens(key, time.monotonic())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def record(self, key: str, tokens: float, when: float) -> None:
        """``key`` had ``tokens`` at ``when`` (time.monotonic())."""
        if key not in self._buckets and len(self._buckets) >= self.MAX_KEYS:
            self._prune(time.monotonic())
        self._buckets[key] = (tokens, when)

    def _prune(self, now: float) -> None:
        """Forget keys whose bucket has filled up again (they are as good as new)."""
        full_after = self.capacity / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


class SharedBucket:
    """A token bucket per key kept in PostgreSQL, so N API processes allow what one does: one atomic
    statement per take (SharedLimits.take_token). Takes of one key that arrive while this process is asking
    the database for it wait, and are then asked for together, in one statement (SharedLimits.take_tokens:
    as many tokens as the bucket holds), so a burst from one client costs a round trip per round trip's
    worth of requests, not one each; every token given is still taken from the shared bucket. A key that
    this process last saw empty is refused from the mirror until it refills, without a round trip (the
    shared bucket can only hold fewer tokens: other processes take from it too). With the database away,
    requests are let through (and logged): the limiter guards the database, which then refuses the work
    itself."""

    def __init__(self, limits: SharedLimits, per_minute: int) -> None:
        self.limits = limits
        self.per_minute = per_minute
        self.mirror = TokenBucket(per_minute)
        self._warned_at = -math.inf
        self._waiting: dict[str, list[asyncio.Future[float]]] = {}  # key -> takes waiting for the next ask

    async def take(self, key: str) -> float:
        """0.0 if ``key`` got a token, else the seconds until it will."""
        wait = self.mirror.wait(key)
        if wait:
            return wait
        waiting = self._waiting.get(key)
        if waiting is not None:  # this key is being asked for: wait for the next ask, with the others
            future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            waiting.append(future)
            return await future
        self._waiting[key] = []
        try:
            return (await self._ask(key, 1))[0]
        finally:
            self._ask_for_waiting(key)

    def _ask_for_waiting(self, key: str) -> None:
        waiting = [future for future in self._waiting.pop(key, []) if not future.done()]
        if waiting:
            self._waiting[key] = []
            asyncio.get_running_loop().create_task(self._answer(key, waiting))

    async def _answer(self, key: str, waiting: list[asyncio.Future[float]]) -> None:
        try:
            waits = await self._ask(key, len(waiting))
        except BaseException as exc:  # no waiter is left waiting for ever
            for future in waiting:
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            self._ask_for_waiting(key)
        for future, wait in zip(waiting, waits, strict=True):
            if not future.done():  # a request that went away meanwhile: its token is spent
                future.set_result(wait)

    async def _ask(self, key: str, count: int) -> list[float]:
        """Take ``count`` tokens of ``key`` from the shared bucket: the wait of each take (0.0: taken)."""
        asked = time.monotonic()  # before the database's clock reads: the mirror errs towards letting in
        try:
            if count == 1:
                took = await self.limits.take_token(key, self.per_minute)
            else:
                took = await self.limits.take_tokens(key, self.per_minute, count)
        except StoreError as exc:
            if time.monotonic() - self._warned_at > STORE_AWAY_LOG_EVERY_S:
                self._warned_at = time.monotonic()
                log.warning("rate limits are not enforced while the database is away: %s", exc)
            return [0.0] * count
        self.mirror.record(key, took.tokens, asked)
        granted = (1 if took.taken else 0) if count == 1 else took.granted
        return [0.0] * granted + [took.wait_s] * (count - granted)


class StreamLeases:
    """This process's leases on event streams (SharedLimits.open_stream): taken when a stream opens, given
    back when it ends, renewed every RENEW_S while it lives, so that a crashed process's streams expire
    after TTL_S and the caps count only live streams. The upkeep task also prunes expired leases and
    full token buckets now and then (any process may: they are shared)."""

    TTL_S = 30.0
    RENEW_S = 10.0
    PRUNE_S = 60.0

    def __init__(self, limits: SharedLimits, max_total: int, max_per_client: int) -> None:
        self.limits = limits
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.process = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._live: dict[uuid.UUID, str] = {}  # lease -> client
        self._lock = asyncio.Lock()  # a renewal never races an open or a close of this process

    @property
    def open(self) -> int:
        return len(self._live)

    async def take(self, client: str, who: str) -> uuid.UUID:
        """A lease for one more stream of ``client``; RefusedError past a cap."""
        async with self._lock:
            lease = await self.limits.open_stream(
                self.process, client, who, self.max_total, self.max_per_client, self.TTL_S
            )
            self._live[lease] = client
        return lease

    async def give_back(self, lease: uuid.UUID) -> None:
        async with self._lock:
            self._live.pop(lease, None)
            try:
                await self.limits.close_stream(lease)
            except GatewayError as exc:  # the next renewal drops it
                log.warning("stream lease %s not given back now: %s", lease, exc)

    async def upkeep(self) -> None:
        """Renew this process's leases, and prune expired leases and full buckets; until cancelled."""
        pruned_at = time.monotonic()
        while True:
            await asyncio.sleep(self.RENEW_S)
            try:
                async with self._lock:
                    await self.limits.renew_streams(self.process, dict(self._live), self.TTL_S)
                if time.monotonic() - pruned_at >= self.PRUNE_S:
                    pruned_at = time.monotonic()
                    await self.limits.prune_streams()
                    await self.limits.prune_token_buckets()
            except GatewayError as exc:
                log.warning("stream leases not renewed (they expire in %.0f s): %s", self.TTL_S, exc)

    async def give_back_all(self) -> None:
        async with self._lock:
            self._live.clear()
            with contextlib.suppress(GatewayError):
                await self.limits.renew_streams(self.process, {}, self.TTL_S)


class ApiLimits:
    """The API's shared limits and their upkeep, made with the app and started with it."""

    def __init__(self, gateway: Gateway, settings: Settings) -> None:
        self.requests = SharedBucket(gateway.limits, settings.api_requests_per_minute)
        self.submissions = SharedBucket(gateway.limits, settings.api_submissions_per_minute)
        self.streams = StreamLeases(
            gateway.limits, settings.api_max_streams, settings.api_max_streams_per_client
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.streams.upkeep(), name="api-limits")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.streams.give_back_all()


async def stream_client(
    request: Request, gateway: Gateway, credentials: HTTPAuthorizationCredentials | None
) -> tuple[str, str]:
    """Who holds an event stream, for the per-client cap: the user of the request's token (the admin for
    the admin token), else its address. (the key, how a refusal names it)"""
    if credentials is not None:
        token = credentials.credentials
        if is_admin_token(request.app.state.settings, token):
            return "admin", "the admin token"
        user = await user_for_token(request, token)
        if user is not None:
            return f"user:{user.id}", f"user {user.name}"
    address = request.client.host if request.client else "unknown"
    return f"address:{address}", address


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
    limit: by its Content-Length before anything is read, or, sent without one, as soon as it passes. A
    body that has not arrived whole ``timeout_s`` after the request began is refused with 408, and the
    connection closed (a client trickling its body holds a connection and a task).

    The middleware answers these itself (while the app has not begun its own answer) and tells the app
    that the client went away, so what the app answers then goes nowhere."""

    def __init__(self, app: ASGIApp, max_bytes: int, file_limit: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
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
        whole = started = refused = False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def refuse(status: int, message: str, headers: dict[str, str] | None = None) -> Message:
            nonlocal refused
            if not started:
                await JSONResponse({"error": message}, status, headers)(scope, receive, send)
            refused = True
            return {"type": "http.disconnect"}

        async def counted() -> Message:
            nonlocal seen, whole
            if refused:
                return {"type": "http.disconnect"}
            if whole:
                return await receive()  # the body is in: what comes now is the disconnect
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                late = f"the request's body did not arrive in {self.timeout_s:g} s"
                return await refuse(408, late, {"Connection": "close"})
            seen += len(message.get("body", b""))
            whole = message["type"] != "http.request" or not message.get("more_body", False)
            if seen > self.max_bytes:
                return await refuse(413, self.message)
            return message

        async def answer(message: Message) -> None:
            nonlocal started
            if refused:
                return  # answered already
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, answer)
