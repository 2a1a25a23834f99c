"""Limits of the HTTP API that hold across all its processes, kept in PostgreSQL (gateway/store/limits.py):
token buckets for its rate limits, and a lease per open event stream (a total cap and one per client).
``SharedLimits`` is built from the store; the API (gateway/http/api/limits.py) decides the keys and the
caps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.core.errors import RefusedError
from gateway.service.model import require_store

if TYPE_CHECKING:
    from gateway.store import Store

STREAM_RETRY_AFTER_S = 5.0  # a stream frees when one ends: no way to know when, so ask again shortly


@dataclass(frozen=True)
class TokenTake:
    taken: bool
    tokens: float  # left in the bucket, as the database has it after this take
    wait_s: float  # 0.0 when taken (every one asked for); else the seconds until a token will be there
    granted: int = 1  # of take_tokens: how many of those asked for were taken


class SharedLimits:
    def __init__(self, store: Store | None) -> None:
        self.store = store

    def _require_store(self) -> Store:
        return require_store(self.store)

    async def take_token(self, key: str, per_minute: float) -> TokenTake:
        """One token from ``key``'s bucket, shared by every API process: ``per_minute`` at once, then one
        every 60/``per_minute`` s. Raises StoreError when the database is away (not retried)."""
        rate = per_minute / 60.0
        taken, tokens = await self._require_store().take_token(key, float(per_minute), rate)
        return TokenTake(taken, tokens, 0.0 if taken else max(0.0, 1.0 - tokens) / rate)

    async def take_tokens(self, key: str, per_minute: float, count: int) -> TokenTake:
        """Up to ``count`` tokens from ``key``'s bucket at once (the takes of requests that arrived
        together): as many as it holds. Raises StoreError when the database is away (not retried)."""
        rate = per_minute / 60.0
        granted, tokens = await self._require_store().take_tokens(key, float(per_minute), rate, count)
        wait = 0.0 if granted == count else max(0.0, 1.0 - tokens) / rate
        return TokenTake(granted > 0, tokens, wait, granted)

    async def prune_token_buckets(self) -> int:
        """Forget the buckets that are full again; how many went."""
        return await self._require_store().prune_buckets()

    async def open_stream(
        self, process: str, client: str, who: str, max_total: int, max_per_client: int, ttl_s: float
    ) -> uuid.UUID:
        """A lease on one more event stream for ``client`` (``who`` names it in a refusal), held by
        ``process`` for ``ttl_s`` unless renewed. RefusedError (rate_limited) past ``max_per_client``
        live leases of the client, (busy) past ``max_total`` in all."""
        lease = uuid.uuid4()
        opened, total, mine = await self._require_store().open_stream_lease(
            lease, process, client, max_total, max_per_client, ttl_s
        )
        if opened:
            return lease
        if mine >= max_per_client:
            raise RefusedError(
                f"too many event streams from {who}: at most {max_per_client} at once per client "
                f"(GATEWAY_API_MAX_STREAMS_PER_CLIENT); close one or try again later",
                "rate_limited",
                STREAM_RETRY_AFTER_S,
            )
        raise RefusedError(
            f"too many event streams are open: the gateway serves at most {max_total} at once "
            f"(GATEWAY_API_MAX_STREAMS, {total} open); try again shortly",
            "busy",
            STREAM_RETRY_AFTER_S,
        )

    async def renew_streams(self, process: str, leases: dict[uuid.UUID, str], ttl_s: float) -> None:
        """Keep exactly these leases (id -> client) of ``process`` alive for ``ttl_s`` more seconds."""
        await self._require_store().renew_stream_leases(process, leases, ttl_s)

    async def close_stream(self, lease: uuid.UUID) -> None:
        await self._require_store().close_stream_lease(lease)

    async def prune_streams(self) -> int:
        """Forget expired leases (of API processes that stopped); how many went."""
        return await self._require_store().prune_stream_leases()

    async def open_streams(self) -> int:
        """Event streams open now in every API process."""
        return await self._require_store().live_stream_leases()
