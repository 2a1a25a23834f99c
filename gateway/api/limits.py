"""Token-bucket rate limits per client: the API's flood guard. (The body size limit is FastAPI's
``max_body_size``; the leaderboards' own rate limits, per user, leaderboard and mode, are the service's.)"""

from __future__ import annotations

import math
import time

MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around the file


class TokenBucket:
    """``per_minute`` requests a minute per key, in bursts of up to ``burst``."""

    MAX_KEYS = 50_000

    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute // 6))
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
