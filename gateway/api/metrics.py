"""Prometheus metrics: the queue and the sites as the database has them (read at each scrape), and the
API's own requests (counted as they are served). One registry per app, never the process-global one."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from gateway.service import Gateway

SITE_WINDOW_S = 3600  # per-site numbers cover the runs finished in the last hour


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

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_of(request)
        self.latency.labels(request.method, route).observe(time.perf_counter() - started)
        self.requests.labels(request.method, route, str(response.status_code)).inc()
        return response

    async def render(self, gateway: Gateway, streams: int) -> bytes:
        stats = await gateway.stats(SITE_WINDOW_S)
        by_state = await gateway.runs_by_state()
        health = await gateway.site_health()
        families: list[Metric] = []

        def gauge(name: str, doc: str, labels: list[str], values: Iterable[tuple[list[str], float]]) -> None:
            family = GaugeMetricFamily(name, doc, labels=labels)
            for label_values, value in values:
                family.add_metric(label_values, value)
            families.append(family)

        gauge(
            "gateway_queue_depth", "runs waiting for a worker", [], [([], stats.unfinished.get("QUEUED", 0))]
        )
        gauge(
            "gateway_runs_unfinished",
            "unfinished runs by state",
            ["state"],
            [([s], n) for s, n in stats.unfinished.items()],
        )
        gauge(
            "gateway_runs", "every recorded run by state", ["state"], [([s], n) for s, n in by_state.items()]
        )
        gauge("gateway_submissions", "submissions recorded", [], [([], stats.submissions)])
        gauge("gateway_event_streams", "event streams (SSE) open now", [], [([], streams)])
        window = f"runs finished in the last {SITE_WINDOW_S} s"
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
        self._snapshot.families = families
        return generate_latest(self.registry)


def _route_of(request: Request) -> str:
    """The route's path template (/api/runs/{run_id}), never the raw path: labels stay few."""
    route = request.scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
