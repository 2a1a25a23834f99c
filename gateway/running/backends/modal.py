"""Modal: one deployed function per GPU type (gateway/running/backends/modal_app.py) runs the bundle and
returns result.json with the output's tail.

Every call to Modal goes through one small seam, ``ModalClient`` (spawn, poll, cancel, backlog); the
real one uses the SDK's async interfaces (``.aio``), so nothing blocks the event loop. Tests put a client
there that runs the function's body through Modal's local execution path (``Function.local``).

Modal cannot look a call up by name: a run taken over from a worker that died after spawning it is
spawned again (the result of either is authenticated with the same key; the first recorded counts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gateway.config.sites import SiteConfig
from gateway.core.errors import BackendError
from gateway.core.states import JobState
from gateway.running.backends.base import JobHandle, JobRequest, JobStatus, PartitionLoad
from gateway.running.backends.fallback import FallbackBackend, Outcome, state_of_exit
from gateway.running.backends.fallback_config import ModalConfig
from gateway.running.jobscript import TemplateRenderer

if TYPE_CHECKING:
    import modal

    from gateway.config.settings import Settings


@dataclass(frozen=True)
class CallOutcome:
    """A finished Modal call: the function's return value, or why there is none."""

    value: dict[str, Any] | None
    state: JobState = JobState.COMPLETED
    error: str | None = None


class ModalClient(Protocol):
    async def spawn(self, function: str, archive: bytes, time_limit_s: float) -> str:
        """Start one call of ``function``; its call id."""
        ...

    async def poll(self, call_id: str) -> CallOutcome | None:
        """The call's outcome, or None while it runs (never waits)."""
        ...

    async def cancel(self, call_id: str) -> None: ...

    async def backlog(self, function: str) -> tuple[int, int]:
        """(calls waiting for a container, calls running) of ``function``."""
        ...

    async def close(self) -> None: ...


class ModalBackend(FallbackBackend):
    name = "modal"

    def __init__(
        self, site: SiteConfig, config: ModalConfig, renderer: TemplateRenderer, client: ModalClient
    ) -> None:
        super().__init__(site, config, renderer)
        self.modal = config
        self.client = client

    async def _start(self, request: JobRequest, archive: bytes) -> str:
        function = self.target(request.partition.gpu_type)
        return await self.client.spawn(function, archive, self.time_limit_s())

    async def _poll(self, handles: Sequence[JobHandle]) -> dict[str, Outcome]:
        calls = await asyncio.gather(*(self.client.poll(h.job_id) for h in handles))
        outcomes = {}
        for handle, call in zip(handles, calls, strict=True):
            if call is None:
                outcomes[handle.job_id] = Outcome(JobStatus(JobState.RUNNING))
            elif call.value is None:
                outcomes[handle.job_id] = Outcome(JobStatus(call.state, call.error))
            else:
                result = call.value.get("result")
                outcomes[handle.job_id] = Outcome(
                    state_of_exit(call.value, "Modal"),
                    result if isinstance(result, bytes) else None,
                    str(call.value.get("output") or ""),
                )
        return outcomes

    async def _cancel(self, handle: JobHandle) -> None:
        await self.client.cancel(handle.job_id)

    async def _find(self, requests: Sequence[JobRequest]) -> dict[str, str]:
        return {}  # see the module docstring

    async def _load(self) -> dict[str, PartitionLoad]:
        gpus = list(self.modal.gpus)
        counts = await asyncio.gather(*(self.client.backlog(self.modal.gpus[g]) for g in gpus))
        return {
            gpu: PartitionLoad(gpu, True, waiting, running, f"modal {self.modal.gpus[gpu]}")
            for gpu, (waiting, running) in zip(gpus, counts, strict=True)
        }

    async def close(self) -> None:
        await self.client.close()


class SdkModalClient:
    """The Modal SDK behind the seam. Credentials come from the settings when given (kept secret), else
    from Modal's own configuration (MODAL_TOKEN_ID/MODAL_TOKEN_SECRET, ~/.modal.toml)."""

    def __init__(self, config: ModalConfig, settings: Settings) -> None:
        self._config = config
        self._credentials = (settings.modal_token_id, settings.modal_token_secret)
        self._client: modal.Client | None = None
        self._functions: dict[str, modal.Function[Any, Any, Any]] = {}

    def __repr__(self) -> str:
        return f"SdkModalClient(app={self._config.app!r})"

    async def _modal_client(self) -> modal.Client | None:
        import modal

        token_id, token_secret = self._credentials
        if self._client is None and token_id is not None and token_secret is not None:
            try:
                self._client = await modal.Client.from_credentials.aio(
                    token_id.get_secret_value(), token_secret.get_secret_value()
                )
            except modal.exception.Error as exc:
                raise BackendError(f"modal: cannot connect: {type(exc).__name__}") from None
        return self._client

    async def _fn(self, name: str) -> modal.Function[Any, Any, Any]:
        import modal

        if name not in self._functions:
            self._functions[name] = modal.Function.from_name(
                self._config.app,
                name,
                environment_name=self._config.environment,
                client=await self._modal_client(),
            )
        return self._functions[name]

    async def spawn(self, function: str, archive: bytes, time_limit_s: float) -> str:
        import modal

        try:
            call = await (await self._fn(function)).spawn.aio(archive, time_limit_s)
        except modal.exception.Error as exc:
            raise BackendError(f"modal: cannot start {self._config.app}.{function}: {_said(exc)}") from exc
        return str(call.object_id)

    async def poll(self, call_id: str) -> CallOutcome | None:
        import modal

        try:
            call = modal.FunctionCall.from_id(call_id, client=await self._modal_client())
            value = await call.get.aio(timeout=0)
        except modal.exception.FunctionTimeoutError:
            return CallOutcome(None, JobState.TIMEOUT, "Modal stopped the function at its timeout")
        except modal.exception.OutputExpiredError:
            return CallOutcome(None, JobState.FAILED, "Modal no longer holds the call's output")
        except modal.exception.TimeoutError:
            return None  # not finished
        except modal.exception.InputCancellation:
            return CallOutcome(None, JobState.CANCELLED, "cancelled on Modal")
        except modal.exception.Error as exc:
            if isinstance(exc, modal.exception.ConnectionError | modal.exception.AuthError):
                raise BackendError(f"modal: cannot ask about call {call_id}: {_said(exc)}") from exc
            return CallOutcome(None, JobState.FAILED, f"the Modal call failed: {_said(exc)}")
        if not isinstance(value, dict):
            return CallOutcome(None, JobState.FAILED, "the Modal function returned no job outcome")
        return CallOutcome(value)

    async def cancel(self, call_id: str) -> None:
        import modal

        try:
            call = modal.FunctionCall.from_id(call_id, client=await self._modal_client())
            await call.cancel.aio(terminate_containers=True)
        except modal.exception.Error as exc:
            raise BackendError(f"modal: cannot cancel call {call_id}: {_said(exc)}") from exc

    async def backlog(self, function: str) -> tuple[int, int]:
        import modal

        try:
            stats = await (await self._fn(function)).get_current_stats.aio()
        except modal.exception.Error as exc:
            raise BackendError(f"modal: no queue status for {function}: {_said(exc)}") from exc
        return stats.backlog, stats.num_running_inputs

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close.aio()
            self._client = None


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"
