"""A client of a gateway's HTTP API, for the remote CLI (`gateway login`, `gateway submit --remote`).

``RemoteGateway(url, token)`` asks who the token belongs to, submits a file, follows a submission's
server-sent events (reconnecting with Last-Event-ID, so no event is lost or repeated) and reads
submissions, runs, leaderboards, rankings and the token owner's own submissions; answers are the API's
JSON as dicts (see gateway/http/api/schemas.py). It needs httpx and httpx-sse only: not FastAPI, not the
database.

The API's errors (``{"error": "..."}`` with a status) become the gateway's exceptions, so the CLI's exit
codes apply: 400/422 UserError, 413 SubmissionError, 404 NotFoundError, 401 UserError saying to run
`gateway login URL`, 403/409/429 RefusedError (with Retry-After), 5xx, other answers and connection
failures RemoteError naming the URL. Messages from the server are shown with control characters
escaped. The token goes in the Authorization header only: it is never logged or put in a message. TLS
is verified (httpx's default); plain http is accepted for this machine only."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import aconnect_sse

from gateway.core.errors import (
    GatewayError,
    NotFoundError,
    RefusedError,
    RemoteError,
    SubmissionError,
    UserError,
)
from gateway.core.validation import printable, shown

log = logging.getLogger(__name__)
TIMEOUT = httpx.Timeout(30.0)
STREAM_TIMEOUT = httpx.Timeout(30.0, read=60.0)  # the server pings an idle stream every 15 s
RECONNECTS = 6  # tries in a row without a new event before a broken stream is given up
RECONNECT_DELAY_S = 0.5  # doubled on each try in a row, up to RECONNECT_DELAY_MAX_S
RECONNECT_DELAY_MAX_S = 10.0
MAX_MESSAGE_CHARS = 2000
EVENT_KINDS = ("state", "progress", "finished")
LOOPBACK_NAMES = ("localhost", "localhost.")
EXAMPLE_URL = "https://gateway.example.org"


@dataclass(frozen=True)
class RemoteEvent:
    """One event of a run, as the API's event stream sends it (its ``EventOut``)."""

    id: int
    run_id: str
    kind: str  # state | progress | finished
    state: str
    message: str
    at: str
    run: dict[str, Any] | None = None  # a finished event's run with its result (the API's RunOut)


def api_url(url: str) -> str:
    """A gateway's base URL, checked and normalized (no trailing slash): https, or plain http to this
    machine only, since the token would cross the network readable. UserError otherwise."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL:
        raise UserError(
            f"{shown(url)} is not a URL: give the gateway's, e.g. https://gateway.example.org"
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UserError(
            f"{shown(url)} is not an http(s) URL: give the gateway's, e.g. https://gateway.example.org"
        )
    if parsed.userinfo or parsed.query or parsed.fragment:
        raise UserError(f"{shown(url)}: give the gateway's URL without a user, query or fragment")
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        raise UserError(
            f"{shown(url)} is plain http: use https (the token would cross the network readable); "
            "http is accepted for localhost only"
        )
    return str(parsed).rstrip("/")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clean(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A server's text as it may be printed: control characters escaped, cut to ``limit``."""
    text = "".join(c if printable(c) or c in "\n\t" else ascii(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "…"


def error_message(response: httpx.Response) -> str:
    """The API's ``{"error": ...}``, else the start of the body, else the status's reason (read body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return clean(body["error"])
    text = response.text.strip()
    return clean(text, 300) if text else response.reason_phrase or f"HTTP {response.status_code}"


def retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_for(response: httpx.Response, base_url: str, provenance: str = "the API token") -> GatewayError:
    """The gateway exception for an API error answer (its body read)."""
    status, message = response.status_code, error_message(response)
    retry = retry_after_s(response)
    if status == 401:
        return UserError(
            f"{base_url} refused {provenance} ({message.split(':', 1)[0]}): get a token with "
            f"`/leaderboard token` in Discord or from an admin, then run `gateway login {base_url}`"
        )
    if status == 404:
        return NotFoundError(message)
    if status == 413:
        return SubmissionError(message)
    if status in (400, 422):
        return UserError(message)
    if status == 403:
        return RefusedError(message, "forbidden")
    if status == 409:
        return RefusedError(message, "drained")
    if status == 429:
        return RefusedError(message, "rate_limited", retry)
    later = f"; try again in {retry:.0f} s" if retry is not None else ""
    if status >= 500:
        return RemoteError(f"{base_url} failed (HTTP {status}): {message}{later}")
    if 300 <= status < 400 and "Location" in response.headers:
        moved = clean(response.headers["Location"], 300)
        return RemoteError(f"{base_url} answered HTTP {status}, moved to {moved}: log in to that URL instead")
    return RemoteError(f"{base_url} answered HTTP {status} to {response.request.url.path}: {message}")


def _unreachable(base_url: str, exc: httpx.HTTPError) -> RemoteError:
    detail = clean(str(exc), 300) or type(exc).__name__
    return RemoteError(f"cannot reach {base_url}: {detail}")


class RemoteGateway:
    """A gateway's HTTP API, with one user's token. Use as ``async with RemoteGateway(url, token) as gw``."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        provenance: str = "the API token",
        transport: httpx.AsyncBaseTransport | None = None,
        reconnect_delay_s: float = RECONNECT_DELAY_S,
    ) -> None:
        self.url = api_url(url)
        if token is not None and not _token_shaped(token):
            raise UserError(f"{provenance} is not an API token (one word of printable ASCII): check it")
        self.provenance = provenance
        self.reconnect_delay_s = reconnect_delay_s
        headers = {"Accept": "application/json", "User-Agent": "kernel-gateway-cli"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=TIMEOUT, transport=transport, follow_redirects=False
        )

    async def __aenter__(self) -> RemoteGateway:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:  # never the token
        return f"RemoteGateway({self.url!r})"

    # -- requests ------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, exc) from exc
        if not response.is_success:
            raise error_for(response, self.url, self.provenance)
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteError(
                f"{self.url}{path} answered something that is not JSON: is it a gateway?"
            ) from exc

    async def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = await self._request(method, path, **kwargs)
        if not isinstance(body, dict):
            raise RemoteError(
                f"{self.url}{path} answered a {type(body).__name__}, not an object: is it a gateway?"
            )
        return body

    async def _list(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        body = await self._request(method, path, **kwargs)
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise RemoteError(
                f"{self.url}{path} answered something other than a list of objects: is it a gateway?"
            )
        return body

    async def me(self) -> dict[str, Any]:
        """Who the token belongs to: ``{"user": ..., "banned": ...}``."""
        return await self._object("GET", "/api/me")

    async def submit(
        self,
        file_name: str,
        code: bytes,
        leaderboard: str,
        gpu_type: str | None = None,
        mode: str = "leaderboard",
        site: str | None = None,
    ) -> dict[str, Any]:
        """Queue a file; the API's SubmittedOut (``submission_id``, ``public_run_id``, ``runs``, ...)."""
        form = {"leaderboard": leaderboard, "mode": mode}
        if gpu_type is not None:
            form["gpu_type"] = gpu_type
        if site is not None:
            form["site"] = site
        return await self._object("POST", "/api/submissions", files={"file": (file_name, code)}, data=form)

    async def submission(self, submission_id: str) -> dict[str, Any]:
        """A submission and each of its runs (the API's SubmissionOut)."""
        return await self._object("GET", f"/api/submissions/{submission_id}")

    async def run(self, run_id: str) -> dict[str, Any]:
        """One run (the API's RunOut)."""
        return await self._object("GET", f"/api/runs/{_segment(run_id)}")

    async def leaderboards(self) -> list[dict[str, Any]]:
        """The leaderboards the token may see (the API's LeaderboardOut each)."""
        return await self._list("GET", "/api/leaderboards")

    async def leaderboard(self, name: str) -> dict[str, Any]:
        """One leaderboard: description, GPU types, deadline, ranking measure, rate limits."""
        return await self._object("GET", f"/api/leaderboards/{_name_segment(name)}")

    async def ranking(self, name: str, gpu: str | None = None, top: int = 100) -> list[dict[str, Any]]:
        """A leaderboard's ranking per GPU type (the API's RankingOut each), best first."""
        params: dict[str, str | int] = {"top": top}
        if gpu is not None:
            params["gpu"] = gpu
        return await self._list("GET", f"/api/leaderboards/{_name_segment(name)}/ranking", params=params)

    async def recent_runs(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        """A leaderboard's latest public runs, newest first (the API's RunOut each)."""
        path = f"/api/leaderboards/{_name_segment(name)}/runs"
        return await self._list("GET", path, params={"limit": limit})

    async def my_submissions(self, limit: int = 20, before: str | None = None) -> dict[str, Any]:
        """A page of the token owner's submissions, newest first (the API's SubmissionPageOut)."""
        params: dict[str, str | int] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return await self._object("GET", "/api/me/submissions", params=params)

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel one of the token owner's runs: ``{"run_id": ..., "message": ...}``."""
        return await self._object("POST", f"/api/runs/{_segment(run_id)}/cancel")

    async def export(self, name: str, fmt: str = "json", gpu: str | None = None) -> str:
        """A leaderboard's whole ranking as the API exports it: CSV or JSON text."""
        params = {"format": fmt} | ({"gpu": gpu} if gpu is not None else {})
        path = f"/api/leaderboards/{_name_segment(name)}/export"
        try:
            response = await self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, exc) from exc
        if not response.is_success:
            raise error_for(response, self.url, self.provenance)
        return response.text

    async def submission_code(self, submission_id: str) -> dict[str, Any]:
        """A submission's code (the API's SubmissionCodeOut: ``file_name``, ``code``, ...)."""
        return await self._object("GET", f"/api/submissions/{quote(submission_id, safe='')}/code")

    async def delete_submission(self, submission_id: str) -> dict[str, Any]:
        """Delete one of the token owner's submissions (the API's DeletedOut: ``message``, ...)."""
        return await self._object("DELETE", f"/api/submissions/{quote(submission_id, safe='')}")

    # -- events --------------------------------------------------------------------------------------

    async def follow(self, submission_id: str, after: int = 0) -> AsyncIterator[RemoteEvent]:
        """Every event of the submission's runs after event ``after``, until the stream's ``end`` (every
        run finished). A broken or closed stream is reopened with Last-Event-ID, so no event is lost or
        repeated; RemoteError after RECONNECTS tries in a row that bring nothing."""
        path = f"/api/submissions/{submission_id}/events"
        last, tries = after, 0
        while True:
            wait: float | None = None
            headers = {"Last-Event-ID": str(last)} if last else {}
            try:
                async with aconnect_sse(
                    self._client, "GET", path, headers=headers, timeout=STREAM_TIMEOUT
                ) as source:
                    response = source.response
                    if response.status_code == 503 and tries < RECONNECTS:  # too many streams: wait
                        await response.aread()
                        wait = retry_after_s(response)
                        why = error_message(response)
                    elif not response.is_success:
                        await response.aread()
                        raise error_for(response, self.url, self.provenance)
                    else:
                        async for sse in source.aiter_sse():
                            if sse.event == "end":
                                return
                            event = _event(sse.event, sse.data) if sse.event in EVENT_KINDS else None
                            if event is None or event.id <= last:
                                continue  # a ping, an unknown kind, or one already passed on
                            last, tries = event.id, 0
                            yield event
                        why = "the stream closed before its end"
            except httpx.HTTPError as exc:  # refused, reset, timed out, or not an event stream
                if tries >= RECONNECTS:
                    raise _unreachable(self.url, exc) from exc
                why = clean(str(exc), 300) or type(exc).__name__
            if tries >= RECONNECTS:
                raise RemoteError(f"{self.url} event stream of submission {submission_id}: {why}")
            tries += 1
            delay = wait if wait is not None else self.reconnect_delay_s * 2 ** (tries - 1)
            log.info("event stream of submission %s: %s; reopening after event %s", submission_id, why, last)
            await asyncio.sleep(min(delay, RECONNECT_DELAY_MAX_S))


def _token_shaped(token: str) -> bool:
    return bool(token) and token.isascii() and token.isprintable() and " " not in token


def _segment(run_id: str) -> str:
    """A run id as one path segment: the ids are hex and dashes; anything else is bad input."""
    if not run_id or not all(c in "0123456789abcdefABCDEF-" for c in run_id):
        raise UserError(f"{shown(run_id)} is not a run id: give the id or its first characters (hex)")
    return run_id


def _name_segment(name: str) -> str:
    """A leaderboard name as one path segment (names may hold spaces and slashes: all quoted)."""
    if not name.strip():
        raise UserError("give the leaderboard's name")
    return quote(name, safe="")


def _event(kind: str, data: str) -> RemoteEvent | None:
    try:
        body = json.loads(data)
    except ValueError:
        log.warning("an event that is not JSON was skipped: %s", clean(data, 200))
        return None
    if not isinstance(body, Mapping) or not isinstance(body.get("id"), int):
        log.warning("an event without an id was skipped: %s", clean(data, 200))
        return None
    return RemoteEvent(
        id=body["id"],
        run_id=str(body.get("run_id", "")),
        kind=kind,
        state=str(body.get("state", "")),
        message=str(body.get("message", "")),
        at=str(body.get("at", "")),
        run=body["run"] if isinstance(body.get("run"), dict) else None,
    )
