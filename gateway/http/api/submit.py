"""Submitting and managing one's own runs, with a user's API token: who am I, submit a file, cancel a run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse

from gateway.core.errors import NotFoundError, TooLargeError, UserError
from gateway.core.modes import modes_help
from gateway.http.api.auth import Service, User, settings_of
from gateway.http.api.caches import BoardCache
from gateway.http.api.limits import too_many
from gateway.http.api.schemas import ErrorOut, QueuedRunOut, SubmittedOut, UserOut
from gateway.service.facade import OPERATOR, Caller, Gateway, LeaderboardRecord
from gateway.service.intake import take_upload
from gateway.service.model import SubmitRequest

router = APIRouter(
    prefix="/api",
    responses={
        401: {"model": ErrorOut, "description": "no valid API token"},
        400: {"model": ErrorOut, "description": "bad input: the message says what to change"},
    },
)


@router.get("/me", response_model=UserOut, tags=["users"])
async def me(user: User) -> UserOut:
    """The user the token belongs to (what `gateway login` checks)."""
    return UserOut(user=user.name, banned=user.banned, display_name=user.shown_name, admin=user.admin)


@router.post(
    "/submissions",
    status_code=202,
    response_model=SubmittedOut,
    tags=["runs"],
    responses={
        403: {"model": ErrorOut, "description": "banned, or the leaderboard is closed"},
        409: {"model": ErrorOut, "description": "the site named is drained"},
        413: {"model": ErrorOut, "description": "the file is too large"},
        429: {"model": ErrorOut, "description": "rate limited; see Retry-After"},
    },
)
async def submit(
    request: Request,
    user: User,
    gateway: Service,
    file: Annotated[UploadFile, File(description="the submission: Python source, UTF-8")],
    leaderboard: Annotated[str, Form(description="the leaderboard to submit to")],
    gpu_type: Annotated[str | None, Form(description="GPU type (default: the board's only one)")] = None,
    mode: Annotated[str, Form(description=modes_help())] = "leaderboard",
    site: Annotated[str | None, Form(description="a site by name, for admins (default: routed)")] = None,
) -> SubmittedOut | JSONResponse:
    """Queue a file for a leaderboard and GPU type; answers at once with the submission and its runs.

    Follow them with `GET /api/submissions/{id}/events` (server-sent events); a leaderboard submission
    has a public run and a secret rerun, and ranks when both pass."""
    wait = await request.app.state.submit_limiter.take(f"user:{user.id}")
    if wait:
        return too_many(f"submissions from {user.name}", wait)
    max_bytes = settings_of(request).max_submission_bytes
    data = await file.read(max_bytes + 1)  # no more than the limit and one byte
    # the one intake of every front end (gateway/service/intake.py); the leaderboard's task checks the rest
    try:
        upload = take_upload(
            data, file.filename or "submission.py", max_bytes=max_bytes, mode=mode, size=file.size
        )
    except TooLargeError as exc:
        raise HTTPException(413, str(exc)) from None
    # enqueue takes the board as the user may see it (a hidden one is not found), kept in this process's
    # memory after its first read, and stores the submission in one transaction that checks the rest (ban,
    # deadline, limits, caps)
    submission = await gateway.enqueue(
        SubmitRequest(
            code=upload.code,
            file_name=upload.file_name,
            user=user.name,
            leaderboard=leaderboard,
            site=site,
            gpu_type=gpu_type,  # None: the board's only GPU type (gateway.service.intake.gpu_for_board)
            mode=upload.mode,
            admin=user.admin,
        ),
        await _known_board(request, gateway, leaderboard),
    )
    public = submission.public_run
    return SubmittedOut(
        submission_id=submission.public_id,
        leaderboard=submission.leaderboard,
        public_run_id=public.run_id,
        runs=[QueuedRunOut(run_id=r.run_id, gpu_type=r.gpu_type, secret=r.secret) for r in submission.runs],
        queue_position=await gateway.queue_position(public.run_id),
        events_url=str(request.url_for("submission_events", submission_id=submission.public_id).path),
        page_url=f"/submissions/{submission.public_id}",
    )


async def _known_board(request: Request, gateway: Gateway, name: str) -> LeaderboardRecord | None:
    """The leaderboard named, from this process's memory (gateway/http/api/caches.py), else read once and
    kept; None when there is none (enqueue then says so, with a hint)."""
    boards: BoardCache = request.app.state.caches.boards
    board = boards.get(name)
    if board is None and boards.enabled and boards.listening:
        generation = boards.generation  # before the read: a change heard during it keeps it out
        try:
            board = await gateway.boards.get_leaderboard(name, caller=OPERATOR)  # whose: enqueue decides
        except (NotFoundError, UserError):
            return None
        boards.put(name, board, generation)
    return board


@router.post("/runs/{run_id}/cancel", tags=["runs"], responses={403: {"model": ErrorOut}})
async def cancel(run_id: str, user: User, gateway: Service) -> dict[str, str]:
    """Cancel one of your runs: at once if no worker started it, else its worker cancels the job."""
    caller = Caller(user.name, user.admin)
    return {"run_id": run_id, "message": await gateway.cancel_run(run_id, caller=caller)}
