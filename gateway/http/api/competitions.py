"""A competition's end and one's own submissions (gateway/service/competitions.py): a board's ranking
exported as CSV or JSON, a submission's code (its owner's; everyone's after the deadline of a board that
reveals code), and deleting one's own submission."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from gateway.http.api.auth import Service, Viewer
from gateway.http.api.schemas import ErrorOut
from gateway.service.authority import ANONYMOUS
from gateway.service.competitions import deleted_text, export_file_name

router = APIRouter(
    prefix="/api",
    responses={404: {"model": ErrorOut}, 400: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


class SubmissionCodeOut(BaseModel):
    submission_id: str  # the public id
    leaderboard: str | None
    user: str
    file_name: str
    submitted_at: datetime
    code: str


class DeletedOut(BaseModel):
    submission_id: str
    message: str
    unranked: int = Field(description="its runs taken out of the ranking")
    cancelled: int = Field(description="its queued runs, cancelled")
    cancel_requested: int = Field(description="its running runs, whose workers cancel them")


@router.get(
    "/leaderboards/{name}/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
    tags=["leaderboards"],
)
async def export(
    name: str,
    gateway: Service,
    viewer: Viewer,
    format: Annotated[Literal["csv", "json"], Query(description="csv or json")] = "json",
    gpu: Annotated[str | None, Query(description="one GPU type (default: every one ranked)")] = None,
) -> Response:
    """The whole ranking (final once the deadline has passed), as `gateway leaderboard export` writes it."""
    done = await gateway.competitions.export(name, gpu, caller=viewer)
    text, media = (done.csv(), "text/csv") if format == "csv" else (done.json(), "application/json")
    file_name = export_file_name(done.leaderboard, format)
    return Response(
        text,
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{file_name}"'},
    )


@router.get("/submissions/{submission_id}/code", response_model=SubmissionCodeOut, tags=["runs"])
async def code(submission_id: str, gateway: Service, viewer: Viewer) -> SubmissionCodeOut:
    """A submission's code: your own (admins: any); anyone's ranked one once the deadline of a board
    that reveals code has passed."""
    found = await gateway.competitions.code(submission_id, caller=viewer)
    return SubmissionCodeOut(
        submission_id=found.public_id,
        leaderboard=found.leaderboard,
        user=found.user_name,
        file_name=found.file_name,
        submitted_at=found.created_at,
        code=found.code,
    )


@router.delete(
    "/submissions/{submission_id}",
    response_model=DeletedOut,
    responses={401: {"model": ErrorOut}},
    tags=["runs"],
)
async def delete(submission_id: str, gateway: Service, viewer: Viewer) -> DeletedOut:
    """Delete one of your submissions before its board's deadline (admins: any, at any time): its runs
    leave the ranking, queued ones are cancelled, running ones are cancelled by their workers."""
    if viewer == ANONYMOUS:
        raise HTTPException(401, "deleting a submission needs your API token", {"WWW-Authenticate": "Bearer"})
    done = await gateway.competitions.delete(submission_id, caller=viewer)
    return DeletedOut(
        submission_id=done.public_id,
        message=deleted_text(done),
        unranked=done.unranked,
        cancelled=done.cancelled,
        cancel_requested=done.cancel_requested,
    )
