"""The Modal seam's test double: each spawn runs the deployed function's own body through Modal's local
execution path (``Function.local``), in a thread, so the harness really runs here and writes an
authenticated result.json. Only the client calls (spawn, poll, cancel, backlog) are replaced."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from gateway.core.states import JobState
from gateway.running.backends import modal_app
from gateway.running.backends.modal import CallOutcome


class LocalModalClient:
    def __init__(self) -> None:
        self.functions = {name: modal_app.FUNCTIONS[gpu] for gpu, (_, name) in modal_app.GPUS.items()}
        self.calls: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self.spawned: list[tuple[str, str, float]] = []  # (function, call id, time limit)
        self.cancelled: list[str] = []
        self.closed = False

    async def spawn(self, function: str, archive: bytes, time_limit_s: float) -> str:
        call_id = f"fc-{uuid.uuid4().hex[:24]}"
        body = self.functions[function].local
        self.calls[call_id] = asyncio.create_task(asyncio.to_thread(body, archive, time_limit_s))
        self.spawned.append((function, call_id, time_limit_s))
        return call_id

    async def poll(self, call_id: str) -> CallOutcome | None:
        task = self.calls[call_id]
        if call_id in self.cancelled:
            return CallOutcome(None, JobState.CANCELLED, "cancelled on Modal")
        if not task.done():
            return None
        if task.exception() is not None:
            return CallOutcome(None, JobState.FAILED, f"the Modal call failed: {task.exception()!r}")
        return CallOutcome(task.result())

    async def cancel(self, call_id: str) -> None:
        self.cancelled.append(call_id)  # a thread cannot be stopped: its answer is ignored

    async def backlog(self, function: str) -> tuple[int, int]:
        return 0, sum(1 for task in self.calls.values() if not task.done())

    async def close(self) -> None:
        self.closed = True
        await asyncio.gather(*self.calls.values(), return_exceptions=True)
