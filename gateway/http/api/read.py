"""Reading endpoints, open to everyone: leaderboards, rankings, score timelines, GPU types, submissions and
runs (a secret rerun shows only its verdict), health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response

from gateway.core.errors import GatewayError
from gateway.http.api.auth import Service, User, Viewer
from gateway.http.api.caches import etag_matches, read_ranking
from gateway.http.api.schemas import (
    ErrorOut,
    GpuTypeOut,
    HealthOut,
    LeaderboardOut,
    RankingOut,
    RunOut,
    ScorePointOut,
    SubmissionOut,
    SubmissionPageOut,
    board_out,
    point_out,
    run_out,
    submission_out,
    submission_summary_out,
    summary_out,
)
from gateway.service.facade import Caller
from gateway.service.model import LOCAL_GPU_LABEL

router = APIRouter(prefix="/api", responses={404: {"model": ErrorOut}, 400: {"model": ErrorOut}})


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}}, tags=["meta"])
async def health(gateway: Service) -> HealthOut:
    """Up, and whether the database answers (503 when it does not)."""
    try:
        await gateway.ping()
    except GatewayError:
        raise HTTPException(503, "the database does not answer") from None
    return HealthOut(status="ok", database=True, sites=len(gateway.sites.configured))


@router.get("/leaderboards", response_model=list[LeaderboardOut], tags=["leaderboards"])
async def leaderboards(gateway: Service, viewer: Viewer) -> list[LeaderboardOut]:
    """Every public leaderboard (hidden ones too for the admin token), by name."""
    return [summary_out(s) for s in await gateway.boards.leaderboards(caller=viewer)]


@router.get("/leaderboards/{name}", response_model=LeaderboardOut, tags=["leaderboards"])
async def leaderboard(name: str, gateway: Service, viewer: Viewer) -> LeaderboardOut:
    """One leaderboard: description, GPU types, deadline, rate limits."""
    board = await gateway.boards.get_leaderboard(name, caller=viewer)
    summary = await gateway.boards.leaderboard_summary(board.name, caller=viewer)
    out = board_out(board, await gateway.boards.rate_limits(board.name, caller=viewer))
    out.submissions, out.runs = summary.submissions, summary.runs
    return out


@router.get(
    "/leaderboards/{name}/ranking",
    response_model=list[RankingOut],
    responses={304: {"description": "unchanged since the ETag sent in If-None-Match"}},
    tags=["leaderboards"],
)
async def ranking(
    request: Request,
    name: str,
    gateway: Service,
    viewer: Viewer,
    gpu: Annotated[str | None, Query(description="one GPU type (default: each one ranked)")] = None,
    top: Annotated[int, Query(ge=1, le=1000)] = 100,
    if_none_match: Annotated[str | None, Header(description="an ETag of an earlier answer")] = None,
) -> Response:
    """The ranking per GPU type: each user's best score whose secret rerun also passed, best first.
    Answers carry an ETag; with `If-None-Match` naming it, an unchanged ranking is 304 with no body."""
    answer = await read_ranking(gateway, request.app.state.caches.rankings, name, gpu, top, viewer)
    headers = {"ETag": answer.etag(), "Cache-Control": "no-cache"}  # kept by clients, asked again each time
    if etag_matches(if_none_match, answer.etag()):
        return Response(status_code=304, headers=headers)
    return Response(answer.body(), media_type="application/json", headers=headers)


@router.get("/leaderboards/{name}/timeline", response_model=list[ScorePointOut], tags=["leaderboards"])
async def timeline(
    name: str,
    gateway: Service,
    viewer: Viewer,
    gpu: Annotated[str, Query(description="the GPU type")],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 2000,
) -> list[ScorePointOut]:
    """Every ranked run on one GPU type, oldest first: the data of the score-over-time charts."""
    board = await gateway.boards.get_leaderboard(name, caller=viewer)
    return [point_out(p) for p in await gateway.boards.score_timeline(board.name, gpu, limit, caller=viewer)]


@router.get("/leaderboards/{name}/runs", response_model=list[RunOut], tags=["leaderboards"])
async def recent_runs(
    name: str, gateway: Service, viewer: Viewer, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[RunOut]:
    """The leaderboard's latest public runs, newest first, queued and running ones included."""
    board = await gateway.boards.get_leaderboard(name, caller=viewer)
    return [run_out(run) for run in await gateway.boards.recent_runs(board, limit)]


@router.get("/gpu-types", response_model=list[GpuTypeOut], tags=["leaderboards"])
async def gpu_types(gateway: Service) -> list[GpuTypeOut]:
    """The GPU types the configured sites offer, with the sites offering each."""
    sites = [gateway.sites.local, *gateway.sites.configured.values(), *gateway.sites.fallbacks.values()]
    return [
        GpuTypeOut(
            gpu_type=gpu, sites=sorted(s.name for s in sites if gpu in (s.gpu_types() or [LOCAL_GPU_LABEL]))
        )
        for gpu in gateway.sites.known_gpu_types()
    ]


@router.get("/submissions/{submission_id}", response_model=SubmissionOut, tags=["runs"])
async def submission(submission_id: str, gateway: Service, viewer: Viewer) -> SubmissionOut:
    """A submission and each of its runs, by its public id (admins: its number too)."""
    return submission_out(await gateway.submission_runs(submission_id, caller=viewer))


@router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
async def run(run_id: str, gateway: Service, viewer: Viewer) -> RunOut:
    """One run by its id (admins: the first characters of it): state, where it ran, tests, timings,
    score; a queued run's place in line for a worker."""
    record = await gateway.run(run_id, caller=viewer)
    out = run_out(record)
    if record.state == "QUEUED" and record.finished_at is None:
        out.queue_position = await gateway.queue_position(record.run_id)
    return out


@router.get(
    "/runs/{run_id}/profile.ncu-rep",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the .ncu-rep file"}},
    tags=["runs"],
)
async def ncu_report(run_id: str, gateway: Service, viewer: Viewer) -> Response:
    """A profile run's Nsight Compute report (open it in Nsight Compute), to whoever may read the run;
    404 when it has none (its site does not run ncu, or it is not a profile run)."""
    record, data = await gateway.ncu_report(run_id, caller=viewer)
    name = f"profile-{record.run_id[:8]}.ncu-rep"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/me/submissions",
    response_model=SubmissionPageOut,
    responses={401: {"model": ErrorOut}},
    tags=["users"],
)
async def my_submissions(
    gateway: Service,
    user: User,
    limit: Annotated[int, Query(ge=1, le=200, description="at most this many submissions")] = 20,
    before: Annotated[
        str | None, Query(max_length=64, description="the next_before of the previous page")
    ] = None,
) -> SubmissionPageOut:
    """The token owner's own submissions, newest first, a page at a time: each with its public run's
    state and score and whether every run (the secret rerun too) passed."""
    caller = Caller(user.name, user.admin)
    pages = await gateway.own_submissions(user.name, before=before, limit=limit, caller=caller)
    items = [submission_summary_out(runs) for runs in pages]
    return SubmissionPageOut(
        submissions=items, next_before=items[-1].submission_id if len(items) == limit else None
    )
