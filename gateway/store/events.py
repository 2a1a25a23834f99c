"""Run events and LISTEN/NOTIFY: front ends follow runs as they move, without polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.store.base import TransientStoreError, retried
from gateway.store.queue import QueueStore
from gateway.store.records import RunEvent
from gateway.store.submissions import insert_event

log = logging.getLogger(__name__)
EVENTS_CHANNEL = "gateway_run_events"
QUEUE_CHANNEL = "gateway_queue"
CANCEL_CHANNEL = "gateway_cancel"


class EventsStore(QueueStore):
    @retried
    async def add_event(
        self, run_id: str, kind: str, state: str, message: str, data: Mapping[str, Any] | None = None
    ) -> None:
        async with self._conn() as conn:
            await insert_event(conn, uuid.UUID(run_id), kind, state, message, data)

    @retried
    async def events(self, run_ids: list[str], after_id: int = 0) -> list[RunEvent]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id, run_id, at, kind, state, message, data FROM run_events "
                "WHERE run_id = ANY($1) AND id > $2 ORDER BY id",
                [uuid.UUID(r) for r in run_ids],
                after_id,
            )
        return [
            RunEvent(r["id"], str(r["run_id"]), r["at"], r["kind"], r["state"], r["message"], r["data"])
            for r in rows
        ]

    @contextlib.asynccontextmanager
    async def notifications(self, *channels: str) -> AsyncIterator[asyncio.Queue[tuple[str, str]]]:
        """LISTEN on ``channels`` over a connection of its own; yields a queue of (channel, payload).

        If the connection drops, ("", "") is put on the queue: the listener must re-read what it follows
        from the tables (nothing is lost: events are rows) and open a new one."""
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        conn = await self._listener()

        def on_notify(_conn: Any, _pid: int, channel: str, payload: object) -> None:
            queue.put_nowait((channel, str(payload)))

        def on_lost(_conn: Any) -> None:
            queue.put_nowait(("", ""))

        try:
            conn.add_termination_listener(on_lost)
            for channel in channels:
                await conn.add_listener(channel, on_notify)
            yield queue
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    async def follow(self, run_ids: list[str], after_id: int = 0) -> AsyncIterator[RunEvent]:
        """Every event of ``run_ids`` (from ``after_id`` on) as it happens, until each has finished.

        Reads the table first and after each notification, so events from before the LISTEN, or from
        while the connection was down (a PostgreSQL restart), are never missed or repeated."""
        open_runs = set(run_ids)
        last = after_id
        while open_runs:
            try:
                async with self.notifications(EVENTS_CHANNEL) as queue:
                    while open_runs:
                        for event in await self.events(run_ids, last):
                            last = event.id
                            if event.kind == "finished":
                                open_runs.discard(event.run_id)
                            yield event
                        if not open_runs:
                            return
                        channel, _ = await _next_for(queue, open_runs)
                        if channel == "":
                            raise TransientStoreError("the LISTEN connection dropped")
            except TransientStoreError as exc:
                log.info("following runs: %s; listening again", exc)
                await asyncio.sleep(0.5)


async def _next_for(queue: asyncio.Queue[tuple[str, str]], runs: set[str]) -> tuple[str, str]:
    """The next notification about one of ``runs`` (or a dropped connection); a safety re-read every 5 s."""
    while True:
        try:
            channel, payload = await asyncio.wait_for(queue.get(), timeout=5.0)
        except TimeoutError:
            return EVENTS_CHANNEL, "{}"
        if channel == "":
            return channel, payload
        with contextlib.suppress(ValueError, KeyError):
            if json.loads(payload)["run"] in runs:
                return channel, payload
