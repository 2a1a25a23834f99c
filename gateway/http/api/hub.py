"""Live events for every open stream over one LISTEN connection.

Each browser tab or CLI following a run would otherwise hold a PostgreSQL connection of its own. The hub
LISTENs once and wakes only the followers of the run a notification names (and the followers of that
run's leaderboard); a woken follower reads its new events from the table, so nothing is missed or
repeated, and a dropped connection wakes everyone to re-read. Followers also re-read every few seconds as
a safety net.

The same connection hears what the process's caches (gateway/http/api/caches.py) must drop, and tells them
when it is up: while it is down they are empty and unused, since a change may go unheard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Iterator

from gateway.core.errors import GatewayError
from gateway.http.api.caches import ApiCaches
from gateway.service.facade import CHANGES_CHANNEL, OPERATOR, Gateway, RunEvent

log = logging.getLogger(__name__)
SAFETY_REREAD_S = 5.0
RECONNECT_S = 1.0
_BOARDS_CACHED = 10_000


class EventHub:
    def __init__(self, gateway: Gateway, caches: ApiCaches) -> None:
        self.gateway = gateway
        self.caches = caches
        self._by_run: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._by_board: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._board_of: OrderedDict[str, str | None] = OrderedDict()  # run id -> leaderboard
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.streams = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.caches.listening(False)

    async def _listen(self) -> None:
        while True:
            try:
                async with self.gateway.event_notifications() as queue:
                    self.caches.listening(True)  # what they held may have changed unheard
                    self.connected.set()
                    self._wake_all()  # anything that happened while no one listened
                    while True:
                        channel, payload = await queue.get()
                        if channel == "":
                            raise GatewayError("the LISTEN connection dropped")
                        if channel == CHANGES_CHANNEL:
                            self.caches.changed(payload)
                        else:
                            await self._dispatch(payload)
            except GatewayError as exc:
                self.caches.listening(False)
                self.connected.clear()
                self._wake_all()
                log.warning("event hub: %s; listening again in %.0f s", exc, RECONNECT_S)
                await asyncio.sleep(RECONNECT_S)

    async def _dispatch(self, payload: str) -> None:
        try:
            run_id = str(json.loads(payload)["run"])
        except (ValueError, KeyError, TypeError):
            log.warning("event hub: unreadable notification %r", payload[:200])
            return
        for waiter in self._by_run.get(run_id, ()):
            waiter.set()
        if self._by_board:
            board = await self._board(run_id)
            for waiter in self._by_board.get(board or "", ()):
                waiter.set()

    async def _board(self, run_id: str) -> str | None:
        if run_id in self._board_of:
            self._board_of.move_to_end(run_id)
            return self._board_of[run_id]
        try:
            board = (await self.gateway.run(run_id, caller=OPERATOR)).leaderboard
        except GatewayError:
            return None
        self._board_of[run_id] = board
        if len(self._board_of) > _BOARDS_CACHED:
            self._board_of.popitem(last=False)
        return board

    def _wake_all(self) -> None:
        for waiters in (*self._by_run.values(), *self._by_board.values()):
            for waiter in waiters:
                waiter.set()

    @contextlib.contextmanager
    def _subscribed(self, index: dict[str, set[asyncio.Event]], keys: list[str]) -> Iterator[asyncio.Event]:
        waiter = asyncio.Event()
        for key in keys:
            index[key].add(waiter)
        self.streams += 1
        try:
            yield waiter
        finally:
            self.streams -= 1
            for key in keys:
                index[key].discard(waiter)
                if not index[key]:
                    del index[key]

    async def follow(self, run_ids: list[str], after_id: int = 0) -> AsyncIterator[RunEvent]:
        """Each event of ``run_ids`` after ``after_id`` as it is recorded, until every run finished."""
        open_runs = set(run_ids)
        last = after_id
        with self._subscribed(self._by_run, run_ids) as waiter:
            while open_runs:
                waiter.clear()  # before reading: a notification during the read wakes the next wait
                for event in await self.gateway.events_after(run_ids, last):
                    last = event.id
                    if event.kind == "finished":
                        open_runs.discard(event.run_id)
                    yield event
                if open_runs:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter.wait(), SAFETY_REREAD_S)

    async def board_changes(self, leaderboard: str, heartbeat_s: float = 15.0) -> AsyncIterator[bool]:
        """True each time a run of ``leaderboard`` records an event (bursts arrive as one); False after
        ``heartbeat_s`` of quiet, so the caller can notice a client that went away."""
        with self._subscribed(self._by_board, [leaderboard]) as waiter:
            while True:
                try:
                    await asyncio.wait_for(waiter.wait(), heartbeat_s)
                except TimeoutError:
                    yield False
                    continue
                waiter.clear()
                yield True
