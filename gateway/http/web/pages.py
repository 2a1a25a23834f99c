"""The HTML pages: the public leaderboards, one leaderboard's ranking, chart and recent runs per GPU type,
and a submission's runs with their tests and timings. They call the service only (through the API's
helpers, so a hidden leaderboard and a secret rerun are hidden exactly as the API hides them).

Every page is rendered with autoescaping and sent with a Content-Security-Policy that allows scripts,
styles and connections from this origin only: the pages hold no inline script or style, and their
scripts build the DOM with textContent. Times are shown in UTC."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from gateway.core.errors import NotFoundError, StoreError, UserError
from gateway.core.formatting import format_seconds
from gateway.core.validation import shown
from gateway.http.api.auth import Service
from gateway.http.api.caches import read_ranking
from gateway.http.api.schemas import RunOut, ranked_out, run_out
from gateway.service.facade import ANONYMOUS

CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
RECENT_RUNS = 20
TOP = 100
WAITING_STATES = ("QUEUED", "PENDING", "CONFIGURING", "REQUEUED")
RANKED_BY = {
    "last": "the last benchmark",
    "mean": "the mean of the benchmarks",
    "geom": "the geometric mean of the benchmarks",
}


@dataclass(frozen=True)
class Status:
    """A run's state as a page shows it (the same rule as static/format.js `statusOf`)."""

    label: str  # queued, running, passed, failed, cancelled, timeout, ...
    kind: str  # waiting | running | passed | failed: the badge's colour


def status_of(run: RunOut) -> Status:
    if not run.finished:
        return Status(run.state.lower(), "waiting" if run.state in WAITING_STATES else "running")
    if run.passed:
        return Status("passed", "passed")
    return Status("failed" if run.state == "COMPLETED" else run.state.lower(), "failed")


def utc(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def deadline_text(deadline: datetime | None) -> str:
    if deadline is None:
        return "open"
    when = utc(deadline)[:16] + " UTC"
    return f"open until {when}" if deadline > datetime.now(UTC) else f"closed {when}: final ranking"


def ranked_by(how: str) -> str:
    return RANKED_BY.get(how, how)


def segment(value: str) -> str:
    """A value as one URL path segment (names may hold '/', '?', '#')."""
    return quote(value, safe="")


environment = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.http.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(
    utc=utc,
    seconds=format_seconds,
    first_line=first_line,
    deadline=deadline_text,
    segment=segment,
    ranked_by=ranked_by,
)
environment.globals.update(status_of=status_of)
templates = Jinja2Templates(env=environment)


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, template, context, status_code=status, headers=PAGE_HEADERS)


def error_page(request: Request, status: int, message: str) -> Response:
    titles = {400: "Bad request", 404: "Not found", 503: "Unavailable"}
    return render(request, "error.html", status, title=titles.get(status, "Error"), message=message)


class PageRoute(APIRoute):
    """A page's errors are pages: a missing (or hidden) leaderboard or submission is a 404 page, a bad
    value a 400 page, the database away a 503 page. The API's handlers would answer JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (NotFoundError, RequestValidationError) as exc:
                message = str(exc) if isinstance(exc, NotFoundError) else "There is no page at this address."
                return error_page(request, 404, message)
            except UserError as exc:
                return error_page(request, 400, str(exc))
            except StoreError:
                return error_page(request, 503, "The database is not available right now: try again shortly.")

        return handle


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def busiest_gpu(gpu_types: list[str], rankings: Mapping[str, Sized]) -> str | None:
    """The GPU type with the most ranked entries; on a tie (none ranked included) the first in the board's
    order; None for a board without GPU types."""
    counts = [len(rankings.get(gpu, ())) for gpu in gpu_types]
    return gpu_types[counts.index(max(counts))] if gpu_types else None


@router.get("/")
async def index(request: Request, gateway: Service) -> Response:
    """Every public leaderboard."""
    return render(request, "index.html", boards=await gateway.boards.leaderboards(caller=ANONYMOUS))


@router.get("/leaderboards/{name:path}")
async def leaderboard(request: Request, name: str, gateway: Service, gpu: str | None = None) -> Response:
    """One leaderboard on one GPU type (``?gpu=``; by default the one with the most ranked entries, the first
    of the board's types on a tie): ranking, score chart, recent runs."""
    # every GPU type's ranking, as the API's cache keeps it for the page (gateway/http/api/caches.py)
    answer = await read_ranking(gateway, request.app.state.caches.rankings, name, None, TOP, ANONYMOUS)
    board, rankings = answer.board, answer.rankings
    if gpu is not None and gpu not in board.gpu_types:
        raise NotFoundError(f"leaderboard {shown(board.name)} does not rank {shown(gpu)}")
    gpu = gpu or busiest_gpu(board.gpu_types, rankings)
    ranking = rankings.get(gpu or "", [])
    return render(
        request,
        "leaderboard.html",
        board=board,
        gpu=gpu or "",
        ranking=[ranked_out(entry) for entry in ranking],
        recent=[run_out(run) for run in await gateway.boards.recent_runs(board, RECENT_RUNS)],
    )


@router.get("/submissions/{submission_id}")
async def submission(request: Request, submission_id: str, gateway: Service) -> Response:
    """A submission's runs (the secret rerun shows only its verdict), followed live until they end: by
    its public id; a hidden board's is 'not found' (the pages are anonymous)."""
    runs = [run_out(run) for run in await gateway.submission_runs(submission_id, caller=ANONYMOUS)]
    first = runs[0]
    board_shown = first.leaderboard is not None
    return render(
        request,
        "submission.html",
        submission_id=submission_id,
        first=first,
        runs=runs,
        finished=all(run.finished for run in runs),
        board_shown=board_shown,
    )


@router.get("/runs/{run_id}")
async def run(run_id: str, gateway: Service) -> Response:
    """A run's page is its submission's page."""
    record = await gateway.run(run_id, caller=ANONYMOUS)
    return RedirectResponse(f"/submissions/{record.public_id}#run-{record.run_id}", 303)
