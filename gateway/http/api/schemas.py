"""What the HTTP API returns: pydantic models (they are the OpenAPI description), built from the
service's records. A secret rerun shows only its verdict: its tests, timings, errors and progress would
tell the hidden inputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from gateway.core.formatting import format_seconds
from gateway.core.waiting import parse_waiting
from gateway.service.competitions import is_final
from gateway.service.facade import (
    LeaderboardRecord,
    LeaderboardSummary,
    RankedEntry,
    RateLimit,
    RunEvent,
    RunRecord,
    ScorePoint,
)
from gateway.service.runview import NcuView, RunView, run_view

SECRET_VERDICT = {
    True: "secret rerun passed",
    False: "secret rerun did not pass: the submission is not ranked",
}


class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong and what to change")


class TestOut(BaseModel):
    spec: str
    passed: bool
    error: str | None = None


class BenchmarkOut(BaseModel):
    spec: str
    passed: bool
    error: str | None = None
    runs: int = 0
    mean_s: float | None = None
    best_s: float | None = None
    worst_s: float | None = None
    std_s: float | None = None


class ProfileOut(BaseModel):
    spec: str
    report: str = Field(
        description="the profiler's table (torch.profiler) of this benchmark, as the submission's process "
        "made it: the submission's own text, at most 16 KiB"
    )


class NcuReportOut(BaseModel):
    url: str | None = Field(default=None, description="where to download the .ncu-rep file")
    size: int | None = Field(default=None, description="its size in bytes")
    error: str | None = Field(default=None, description="why there is no report")


class RunOut(BaseModel):
    run_id: str
    submission_id: str  # the public id (not guessable from another)
    user: str
    file_name: str
    leaderboard: str | None
    mode: str
    secret: bool
    gpu_type: str | None
    site: str | None
    partition: str | None
    backend: str | None
    job_id: str | None
    attempt: int
    state: str
    finished: bool
    passed: bool | None
    score: float | None = Field(description="seconds (the ranking's measure); lower is better")
    score_text: str | None = Field(description="the score as people read it, e.g. 41.3 µs")
    error: str | None
    ranked: bool
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    tests: list[TestOut] = []
    benchmarks: list[BenchmarkOut] = []
    profile: list[ProfileOut] = Field(default=[], description="profile mode: each benchmark's profiler table")
    ncu_report: NcuReportOut | None = Field(
        default=None, description="profile mode on a site that runs Nsight Compute: its report"
    )
    system: dict[str, Any] = {}
    queue_position: int | None = Field(
        default=None, description="a queued run's place in line for a worker (1: next), on GET /api/runs/{id}"
    )


class QueuedRunOut(BaseModel):
    run_id: str
    gpu_type: str
    secret: bool


class SubmittedOut(BaseModel):
    submission_id: str  # the public id (not guessable from another)
    leaderboard: str | None
    public_run_id: str
    runs: list[QueuedRunOut]
    queue_position: int | None = Field(description="the public run's place in line for a worker (1: next)")
    events_url: str = Field(description="server-sent events of every run of the submission")
    page_url: str = Field(description="the submission's web page")


class SubmissionOut(BaseModel):
    submission_id: str  # the public id (not guessable from another)
    leaderboard: str | None
    user: str
    file_name: str
    finished: bool
    runs: list[RunOut]


class EventOut(BaseModel):
    id: int
    run_id: str
    at: datetime
    kind: str = Field(description="state | progress | finished")
    state: str
    message: str
    run: RunOut | None = Field(default=None, description="finished events: the run with its result")
    reason: str | None = Field(default=None, description="state events: why Slurm keeps the job waiting")
    start_estimate: datetime | None = Field(
        default=None, description="state events of a pending job: when Slurm expects it to start"
    )


class SubmissionSummaryOut(BaseModel):
    """One of the caller's submissions, as GET /api/me/submissions lists them."""

    submission_id: str  # the public id
    leaderboard: str | None
    file_name: str
    mode: str
    queued_at: datetime
    finished: bool
    state: str = Field(description="the public run's state")
    passed: bool | None = Field(description="every run passed (the secret rerun too); None until finished")
    score: float | None = Field(description="the public run's score, seconds")
    score_text: str | None
    gpu_type: str | None
    public_run_id: str


class SubmissionPageOut(BaseModel):
    submissions: list[SubmissionSummaryOut] = Field(description="newest first")
    next_before: str | None = Field(
        description="pass as ?before= for the next (older) page; null on the last page"
    )


class RateLimitOut(BaseModel):
    mode: str
    max_submissions: int
    per_seconds: int


class LeaderboardOut(BaseModel):
    name: str
    description: str
    gpu_types: list[str]
    deadline: datetime | None
    visibility: str
    submissions: int | None = None
    runs: int | None = None
    ranking_by: str | None = None
    rate_limits: list[RateLimitOut] = []
    final: bool = Field(
        default=False, description="past its deadline: its ranking is final (late runs never rank)"
    )
    reveal_code: bool | None = Field(
        default=None, description="after its deadline, its ranked submissions' code is public (null in lists)"
    )


class RankedOut(BaseModel):
    rank: int
    user: str
    score: float
    score_text: str
    run_id: str
    file_name: str
    site: str
    submitted_at: datetime
    submission_id: str = ""  # the public id


class RankingOut(BaseModel):
    leaderboard: str
    gpu_type: str
    ranking_by: str
    entries: list[RankedOut]


class ScorePointOut(BaseModel):
    at: datetime
    user: str
    score: float
    run_id: str


class GpuTypeOut(BaseModel):
    gpu_type: str
    sites: list[str]


class UserOut(BaseModel):
    user: str  # the account ('discord:<id>' for a Discord user)
    banned: bool
    display_name: str | None = None
    admin: bool = False


class TokenOut(BaseModel):
    user: str
    token: str = Field(description="shown once: the gateway keeps only its hash")


class HealthOut(BaseModel):
    status: str
    database: bool
    sites: int


def run_out(record: RunRecord) -> RunOut:
    return run_out_of(run_view(record))


def run_out_of(view: RunView) -> RunOut:
    """A run as the API sends it; a secret rerun (``view.redacted``) says only whether it passed."""
    route = view.route
    assert view.queued_at is not None, "the API shows recorded runs only"
    return RunOut(
        run_id=view.run_id,
        submission_id=view.public_id,
        user=view.user,
        file_name=view.file_name,
        leaderboard=view.leaderboard,
        mode=view.mode,
        secret=view.secret,
        gpu_type=view.gpu_type,
        site=route.site if route else None,
        partition=route.partition if route else None,
        backend=route.backend if route else None,
        job_id=view.job_id,
        attempt=view.attempt,
        state=view.state,
        finished=view.finished,
        passed=view.passed,
        score=view.score,
        score_text=None if view.score is None else format_seconds(view.score),
        error=view.error,  # a secret rerun's is HIDDEN_ERROR (gateway.service.runview)
        ranked=view.ranked,
        queued_at=view.queued_at,
        started_at=view.started_at,
        finished_at=view.finished_at,
        tests=[TestOut(spec=t.spec, passed=t.passed, error=t.error) for t in view.tests],
        benchmarks=[
            BenchmarkOut(
                spec=b.spec,
                passed=b.passed,
                error=b.error,
                runs=b.runs or 0,
                mean_s=b.mean_s,
                best_s=b.best_s,
                worst_s=b.worst_s,
                std_s=b.std_s,
            )
            for b in view.benchmarks
        ],
        profile=[ProfileOut(spec=p.spec, report=p.report) for p in view.profiles],
        ncu_report=ncu_out(view.ncu),
        system=dict(view.system),
    )


def ncu_out(ncu: NcuView | None) -> NcuReportOut | None:
    """What a run's result says of its Nsight Compute report: where to download it, or why there is none."""
    if ncu is None:
        return None
    return NcuReportOut(url=ncu.url, size=ncu.size, error=ncu.error)


def submission_out(runs: list[RunRecord]) -> SubmissionOut:
    """A submission from its runs (the public run(s) first, as the service lists them)."""
    first = runs[0]
    return SubmissionOut(
        submission_id=first.public_id,
        leaderboard=first.leaderboard,
        user=first.user_name,
        file_name=first.file_name,
        finished=all(r.finished_at is not None for r in runs),
        runs=[run_out(r) for r in runs],
    )


def event_out(event: RunEvent, secret: bool, finished_run: RunRecord | None = None) -> EventOut:
    """An event as followers get it; a finished one carries its run (``finished_run``, with the result),
    and a secret rerun's says only whether it passed."""
    message = event.message
    waiting = parse_waiting(message) if event.kind == "state" else None
    if secret and event.kind == "finished":
        message = (
            f"secret rerun finished: {event.state}"
            if finished_run is None
            else SECRET_VERDICT[bool(finished_run.passed)]
        )
    return EventOut(
        id=event.id,
        run_id=event.run_id,
        at=event.at,
        kind=event.kind,
        state=event.state,
        message=message,
        run=run_out(finished_run) if finished_run is not None else None,
        reason=waiting.reason if waiting else None,
        start_estimate=waiting.start_at if waiting else None,
    )


def submission_summary_out(runs: list[RunRecord]) -> SubmissionSummaryOut:
    """A submission in one line, from its runs (the public one first)."""
    public = runs[0]
    finished = all(r.finished_at is not None for r in runs)
    return SubmissionSummaryOut(
        submission_id=public.public_id,
        leaderboard=public.leaderboard,
        file_name=public.file_name,
        mode=public.mode,
        queued_at=public.queued_at,
        finished=finished,
        state=public.state,
        passed=all(r.passed is True for r in runs) if finished else None,
        score=public.score,
        score_text=None if public.score is None else format_seconds(public.score),
        gpu_type=public.gpu_type,
        public_run_id=public.run_id,
    )


def summary_out(summary: LeaderboardSummary) -> LeaderboardOut:
    return LeaderboardOut(
        name=summary.name,
        description=summary.description,
        gpu_types=summary.gpu_types,
        deadline=summary.deadline,
        visibility=summary.visibility,
        submissions=summary.submissions,
        runs=summary.runs,
        final=is_final(summary.deadline),
    )


def board_out(board: LeaderboardRecord, limits: list[RateLimit]) -> LeaderboardOut:
    return LeaderboardOut(
        name=board.name,
        description=board.description,
        gpu_types=board.gpu_types,
        deadline=board.deadline,
        visibility=board.visibility,
        ranking_by=board.ranking_by,
        rate_limits=[RateLimitOut(**vars(limit)) for limit in limits],
        final=is_final(board.deadline),
        reveal_code=board.reveal_code,
    )


def ranked_out(entry: RankedEntry) -> RankedOut:
    return RankedOut(
        rank=entry.rank,
        user=entry.user_name,
        score=entry.score,
        score_text=format_seconds(entry.score),
        run_id=entry.run_id,
        file_name=entry.file_name,
        site=entry.site,
        submitted_at=entry.submitted_at,
        submission_id=entry.submission_id,
    )


def point_out(point: ScorePoint) -> ScorePointOut:
    return ScorePointOut(at=point.at, user=point.user_name, score=point.score, run_id=point.run_id)
