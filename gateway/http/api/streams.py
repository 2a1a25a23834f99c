"""Server-sent events: a run's or a submission's events as they are recorded, and a leaderboard's
"something changed" pings for its web page.

Each event's SSE id is its id in run_events, so a client that reconnects with Last-Event-ID (browsers
do by themselves) gets exactly what it missed. A stream ends with an ``end`` event once every run it
follows has finished: EventSource would otherwise reconnect to a stream that has nothing more to say."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from gateway.core.validation import BIGINT_MAX
from gateway.http.api.auth import Credentials, Service, Viewer
from gateway.http.api.hub import EventHub
from gateway.http.api.limits import StreamLeases, stream_client
from gateway.http.api.schemas import ErrorOut, event_out
from gateway.service.facade import OPERATOR, LeaderboardRecord, RunRecord

router = APIRouter(prefix="/api", tags=["events"], responses={404: {"model": ErrorOut}})
BOARD_PING_MIN_INTERVAL_S = 1.0


async def hub_of(request: Request, gateway: Service, credentials: Credentials) -> AsyncIterator[EventHub]:
    """The event hub, with a lease on one stream held until the stream ends: past the client's cap 429,
    past the total 503 (both counted over every API process)."""
    leases: StreamLeases = request.app.state.limits.streams
    lease = await leases.take(*await stream_client(request, gateway, credentials))
    try:
        yield request.app.state.hub
    finally:
        await leases.give_back(lease)


Hub = Annotated[EventHub, Depends(hub_of)]


async def resume_from(
    after: Annotated[int, Query(ge=0, le=BIGINT_MAX, description="send only events after this event id")] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> int:
    """Where a stream starts: after Last-Event-ID (a reconnecting EventSource), else after ``after``."""
    if last_event_id is not None and last_event_id.isascii() and last_event_id.isdigit():
        digits = last_event_id.lstrip("0") or "0"
        return max(after, BIGINT_MAX if len(digits) > 19 else min(int(digits), BIGINT_MAX))
    return after


After = Annotated[int, Depends(resume_from)]


async def _run_of(run_id: str, gateway: Service, viewer: Viewer) -> list[RunRecord]:
    return [await gateway.run(run_id, caller=viewer)]


async def _submission_of(submission_id: str, gateway: Service, viewer: Viewer) -> list[RunRecord]:
    return await gateway.submission_runs(submission_id, caller=viewer)


async def _events(hub: EventHub, runs: list[RunRecord], after: int) -> AsyncIterator[ServerSentEvent]:
    secret = {r.run_id: r.secret for r in runs}
    async for event in hub.follow(list(secret), after):
        if secret[event.run_id] and event.kind == "progress":
            continue  # a secret rerun's progress would tell its hidden inputs
        finished = await hub.gateway.run(event.run_id, caller=OPERATOR) if event.kind == "finished" else None
        out = event_out(event, secret[event.run_id], finished)
        data = out.model_dump(mode="json", exclude=None if finished else {"run"})
        yield ServerSentEvent(data=data, event=event.kind, id=str(event.id))
    yield ServerSentEvent(data={"runs": list(secret)}, event="end")


@router.get("/runs/{run_id}/events", response_class=EventSourceResponse)
async def run_events(
    runs: Annotated[list[RunRecord], Depends(_run_of)], hub: Hub, after: After
) -> AsyncIterator[ServerSentEvent]:
    """The run's events (``state``, ``progress``, ``finished``: its data has the run's result as ``run``),
    each `data` an event as JSON, then ``end``."""
    async for message in _events(hub, runs, after):
        yield message


@router.get(
    "/submissions/{submission_id}/events", response_class=EventSourceResponse, name="submission_events"
)
async def submission_events(
    runs: Annotated[list[RunRecord], Depends(_submission_of)], hub: Hub, after: After
) -> AsyncIterator[ServerSentEvent]:
    """The events of every run of a submission (the secret rerun's without its progress), then ``end``."""
    async for message in _events(hub, runs, after):
        yield message


async def _board_of(name: str, gateway: Service, viewer: Viewer) -> LeaderboardRecord:
    return await gateway.boards.get_leaderboard(name, caller=viewer)


@router.get("/leaderboards/{name}/events", response_class=EventSourceResponse)
async def leaderboard_events(
    board: Annotated[LeaderboardRecord, Depends(_board_of)], hub: Hub
) -> AsyncIterator[ServerSentEvent]:
    """A ``changed`` event whenever a run of the leaderboard moves (queued, running, finished): at most
    one a second. Pages re-read the ranking and recent runs when it comes."""
    async for changed in hub.board_changes(board.name):
        if changed:
            yield ServerSentEvent(data={"leaderboard": board.name}, event="changed")
            await asyncio.sleep(BOARD_PING_MIN_INTERVAL_S)
