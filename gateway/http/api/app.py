"""The HTTP API's FastAPI app: routers, errors as JSON, limits, metrics, and the event hub's lifetime.

The app is given an open Gateway (the service) and its settings; it calls the service only. Errors
come back as ``{"error": "..."}`` with a status that says what kind: 400 bad input, 401 no valid token,
403 refused (banned, closed, not yours), 404 not found, 409 the site named is drained, 413 too large,
408 a body too slow to arrive, 422 a malformed request, 429 rate limited (with Retry-After), 503 the
database is away or too many event streams are open; anything else is 500 with a reference that the log
has the detail of."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config.settings import Settings
from gateway.core.errors import GatewayError, NotFoundError, RefusedError, StoreError, UserError
from gateway.http import web
from gateway.http.api import admin, competitions, read, streams, submit
from gateway.http.api.caches import ApiCaches
from gateway.http.api.hub import EventHub
from gateway.http.api.limits import MULTIPART_OVERHEAD, ApiLimits, BodyLimit, retry_after, too_many
from gateway.http.api.metrics import Metrics, metrics_authorized
from gateway.service.facade import Gateway

log = logging.getLogger(__name__)
REFUSED_STATUS = {
    "banned": 403,
    "closed": 403,
    "forbidden": 403,
    "rate_limited": 429,
    "too_many_unfinished": 429,
    "drained": 409,
    "busy": 503,
}
UNLIMITED_PATHS = ("/api/health", "/metrics")  # probes and scrapers are not rate limited


def create_app(gateway: Gateway, settings: Settings) -> FastAPI:
    caches = ApiCaches.of(settings)
    hub = EventHub(gateway, caches)
    metrics = Metrics()
    limits = ApiLimits(gateway, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        await limits.start()
        try:
            yield
        finally:
            await limits.stop()
            await hub.stop()

    app = FastAPI(
        title="Kernel gateway",
        summary="Submit GPU kernels to donated Slurm sites and follow them onto the leaderboard.",
        version="1",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.settings = settings
    app.state.hub = hub
    app.state.caches = caches
    app.state.metrics = metrics
    app.state.limits = limits
    app.state.submit_limiter = limits.submissions

    for router in (read.router, submit.router, streams.router, admin.router, competitions.router):
        app.include_router(router)

    @app.get("/metrics", tags=["meta"], response_class=Response)
    async def prometheus(request: Request) -> Response:
        """Prometheus metrics: queue depth, runs by state, per-site latency and failures, HTTP requests.
        With GATEWAY_METRICS_TOKEN set, only for `Authorization: Bearer <it>`."""
        if not metrics_authorized(settings, request.headers.get("authorization")):
            return _error(
                401, "/metrics needs the metrics token as a Bearer token", {"WWW-Authenticate": "Bearer"}
            )
        body = await metrics.render(gateway, hub.streams)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    def rate_limit(inner: ASGIApp) -> ASGIApp:
        """Each request (but probes' and scrapers') takes a token of its address's shared bucket; plain
        ASGI, as every middleware here (starlette's BaseHTTPMiddleware costs a task per request)."""

        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] not in UNLIMITED_PATHS:
                client = scope["client"][0] if scope.get("client") else "unknown"
                wait = await limits.requests.take(f"address:{client}")
                if wait:
                    await too_many(f"requests from {client}", wait)(scope, receive, send)
                    return
            await inner(scope, receive, send)

        return limited

    app.add_middleware(_Wrapped, wrap=rate_limit)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_submission_bytes + MULTIPART_OVERHEAD,
        file_limit=settings.max_submission_bytes,
        timeout_s=settings.api_body_timeout_s,
    )
    app.add_middleware(_Wrapped, wrap=metrics.middleware)  # outermost: counts the limits' 413s and 429s too
    _add_error_handlers(app)
    web.install(app)  # the web pages and /static, after the error handlers: /api keeps its JSON 404
    return app


class _Wrapped:
    """An ASGI middleware made by a function of the app it wraps (for ``app.add_middleware``)."""

    def __init__(self, app: ASGIApp, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
        self.wrapped = wrap(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.wrapped(scope, receive, send)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RefusedError)
    async def refused(_: Request, exc: RefusedError) -> JSONResponse:
        headers = {"Retry-After": retry_after(exc.retry_after_s)} if exc.retry_after_s else None
        return _error(REFUSED_STATUS.get(exc.reason, 403), str(exc), headers)

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(UserError)
    async def bad_input(_: Request, exc: UserError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(StoreError)
    async def database_away(_: Request, exc: StoreError) -> JSONResponse:
        log.warning("database error: %s", exc)
        return _error(503, "the database is not available right now: try again shortly", {"Retry-After": "5"})

    @app.exception_handler(GatewayError)
    async def gateway_failed(_: Request, exc: GatewayError) -> JSONResponse:
        reference = secrets.token_hex(4)
        log.error("request failed (reference %s): %s", reference, exc)
        return _error(500, f"the gateway failed (reference {reference}: the admins' log has the detail)")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
            problems.append(f"{where}: {problem.get('msg', 'invalid')}")
        return _error(422, "malformed request: " + "; ".join(problems))
