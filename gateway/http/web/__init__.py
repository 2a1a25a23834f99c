"""The web pages of `gateway serve`: leaderboards with their rankings and score charts, and submissions
followed live. Server-rendered (Jinja, autoescaped); static scripts make them live from the API's JSON
and event streams. See docs/web.md."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from gateway.http.web import pages

NOT_PAGES = ("/api/", "/static/", "/metrics", "/docs", "/redoc", "/openapi.json")


def install(app: FastAPI) -> None:
    """Serve the pages and their static files on ``app``; call it after the API's error handlers are
    added. A 404 outside the API is a page for a browser, and stays the API's JSON for everyone else."""
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(packages=[("gateway.http.web", "static")]), name="static")
    api_handler = app.exception_handlers[HTTPException]

    async def not_found(request: Request, exc: Any) -> Response:
        wants_page = "text/html" in request.headers.get("accept", "")
        if request.url.path.startswith(NOT_PAGES) or not wants_page:
            response = api_handler(request, exc)
            return await response if inspect.isawaitable(response) else response
        return pages.error_page(request, 404, "There is no page at this address.")

    app.add_exception_handler(404, not_found)
