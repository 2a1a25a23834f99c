"""Prometheus metrics: the queue and the sites as the database has them, and the API's own requests
(counted as they are served). One registry per app, never the process-global one.

A scrape stays cheap on a large database: what it reads each time follows the queue, not the history
(unfinished runs by state through the partial index on them, the sites' health, the open streams); the
families that count the whole history (every run by state, submissions, the sites' last hour) are read
at most every SLOW_EVERY_S, in the background, by one query that concurrent scrapes share, and a scrape
shows the last values read. Labels are states, sites, methods, statuses and route templates: never a
leaderboard's name, so hidden leaderboards do not show through."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config.settings import Settings
from gateway.service.facade import Gateway, GatewayStats

log = logging.getLogger(__name__)
SITE_WINDOW_S = 3600  # per-site numbers cover the runs finished in the last hour
SLOW_EVERY_S = 60.0  # the whole-history families are read at most this often


def metrics_authorized(settings: Settings, authorization: str | None) -> bool:
    """True without a metrics token configured, else for ``Bearer <the token>`` (constant time)."""
    if settings.metrics_token is None:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    expected = hashlib.sha256(settings.metrics_token.get_secret_value().encode()).digest()
    return hmac.compare_digest(
        expected, hashlib.sha256(token.strip().encode("utf-8", "surrogatepass")).digest()
    )


@dataclass(frozen=True)
class _Slow:
    stats: GatewayStats
    by_state: dict[str, int]
    at: float  # time.monotonic() when read


class _Snapshot(Collector):
    """The metric families read from the service just before a scrape is rendered."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests served, by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_http_request_duration_seconds",
            "time to the response's first byte, by method and route",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self._slow: _Slow | None = None
        self._reading: asyncio.Task[_Slow] | None = None

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware counting each request by route and status, and timing it to its response's
        first byte (plain ASGI: starlette's BaseHTTPMiddleware costs a task and a stream per request)."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 0

            async def timed(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    self.latency.labels(scope["method"], _route_of(scope)).observe(
                        time.perf_counter() - started
                    )
                await send(message)

            try:
                await app(scope, receive, timed)
            finally:
                if not status:  # no answer (an error the server answers 500): timed to now
                    self.latency.labels(scope["method"], _route_of(scope)).observe(
                        time.perf_counter() - started
                    )
                self.requests.labels(scope["method"], _route_of(scope), str(status or 500)).inc()

        return counted

    async def _read_slow(self, gateway: Gateway) -> _Slow:
        stats = await gateway.stats(SITE_WINDOW_S)
        return _Slow(stats, await gateway.runs_by_state(), time.monotonic())

    async def _slow_numbers(self, gateway: Gateway) -> _Slow:
        """The whole-history numbers: read once and shared; when older than SLOW_EVERY_S, read again in
        the background while scrapes show the last ones."""
        if self._reading is not None and self._reading.done():
            reading, self._reading = self._reading, None
            with contextlib.suppress(asyncio.CancelledError):
                if reading.exception() is None:
                    self._slow = reading.result()
                else:
                    log.warning("metrics: reading the totals failed: %s", reading.exception())
        stale = self._slow is None or time.monotonic() - self._slow.at >= SLOW_EVERY_S
        if stale and self._reading is None:
            self._reading = asyncio.create_task(self._read_slow(gateway), name="metrics-totals")
        if self._slow is None:
            assert self._reading is not None
            self._slow = await asyncio.shield(self._reading)  # the first scrape waits (and shares it)
        return self._slow

    async def render(self, gateway: Gateway, streams: int) -> bytes:
        slow = await self._slow_numbers(gateway)
        stats, by_state = slow.stats, slow.by_state
        unfinished = await gateway.unfinished_by_state()
        health = await gateway.sites.health()
        leased = await gateway.limits.open_streams()
        families: list[Metric] = []

        def gauge(name: str, doc: str, labels: list[str], values: Iterable[tuple[list[str], float]]) -> None:
            family = GaugeMetricFamily(name, doc, labels=labels)
            for label_values, value in values:
                family.add_metric(label_values, value)
            families.append(family)

        every = f"(read at most every {SLOW_EVERY_S:g} s)"
        gauge("gateway_queue_depth", "runs waiting for a worker", [], [([], unfinished.get("QUEUED", 0))])
        gauge(
            "gateway_runs_unfinished",
            "unfinished runs by state",
            ["state"],
            [([s], n) for s, n in unfinished.items()],
        )
        gauge(
            "gateway_runs",
            f"every recorded run by state {every}",
            ["state"],
            [([s], n) for s, n in by_state.items()],
        )
        gauge("gateway_submissions", f"submissions recorded {every}", [], [([], stats.submissions)])
        gauge("gateway_event_streams", "event streams (SSE) this API process serves now", [], [([], streams)])
        gauge(
            "gateway_event_streams_all",
            "event streams (SSE) open now in every API process (live leases)",
            [],
            [([], leased)],
        )
        window = f"runs finished in the last {SITE_WINDOW_S} s {every}"
        gauge("gateway_site_runs_finished", window, ["site"], [([s.site], s.runs) for s in stats.sites])
        gauge(
            "gateway_site_runs_failed",
            f"failed {window}",
            ["site"],
            [([s.site], s.failed) for s in stats.sites],
        )
        gauge(
            "gateway_site_wait_seconds_median",
            f"median time from queued to started, {window}",
            ["site"],
            [([s.site], s.median_wait_s) for s in stats.sites if s.median_wait_s is not None],
        )
        gauge(
            "gateway_site_latency_seconds_median",
            f"median time from queued to result recorded, {window}",
            ["site"],
            [([s.site], s.median_total_s) for s in stats.sites if s.median_total_s is not None],
        )
        gauge(
            "gateway_site_consecutive_failures",
            "submissions to the site that failed in a row",
            ["site"],
            [([h.site], h.consecutive_failures) for h in health.values()],
        )
        gauge(
            "gateway_site_drained",
            "1 if an admin drained the site",
            ["site"],
            [([h.site], h.drained) for h in health.values()],
        )
        self._snapshot.families = families  # no await from here to the text: scrapes cannot interleave
        return generate_latest(self.registry)


def _route_of(scope: Scope) -> str:
    """The route's path template (/api/runs/{run_id}), never the raw path: labels stay few."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
