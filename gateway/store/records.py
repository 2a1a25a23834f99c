"""Typed rows the store returns: front ends and the service never see asyncpg records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class LeaderboardRecord:
    id: int
    name: str
    description: str
    task: dict[str, Any]
    ranking_by: str
    gpu_types: list[str]
    deadline: datetime | None = None
    visibility: str = "public"
    creator: str | None = None
    created_at: datetime | None = None
    max_unfinished_per_user: int | None = None  # its cap on each user's unfinished runs (None: the default)
    reveal_code: bool = False  # once past its deadline, its ranked submissions' code is everyone's to read


@dataclass(frozen=True)
class LeaderboardSummary:
    name: str
    description: str
    gpu_types: list[str]
    deadline: datetime | None
    visibility: str
    submissions: int
    runs: int


@dataclass(frozen=True)
class UserRecord:
    id: int
    name: str  # the account: unique, 'discord:<id>' for a Discord user
    banned: bool
    admin: bool = False  # holds an admin's rights (naming a site, hidden boards, admin endpoints)
    display_name: str | None = None  # what is shown (a Discord user's name, refreshed as they act)
    discord_id: str | None = None

    @property
    def shown_name(self) -> str:
        return self.display_name or self.name


@dataclass(frozen=True)
class NewRun:
    run_id: str
    mode: str
    gpu_type: str | None
    result_key: str
    secret: bool = False
    requested_site: str | None = None


@dataclass(frozen=True)
class RateLimit:
    mode: str
    max_submissions: int
    per_seconds: int


@dataclass(frozen=True)
class RankedEntry:
    rank: int
    user_name: str
    gpu_type: str
    score: float
    run_id: str
    file_name: str
    site: str
    submitted_at: datetime
    submission_id: str = ""  # the submission's public id
    account: str = ""  # the submitter's account (users.name); user_name is what is shown
    finished_at: datetime | None = None  # when its result was recorded (before the board's deadline)


@dataclass(frozen=True)
class ScorePoint:
    """A ranked run on a leaderboard's GPU type, for charts of scores over time."""

    at: datetime
    user_name: str
    score: float
    run_id: str


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    submission_id: int
    user_name: str
    file_name: str
    leaderboard: str | None
    mode: str
    secret: bool
    gpu_type: str | None
    site: str | None
    partition: str | None
    job_id: str | None
    attempt: int
    state: str
    passed: bool | None
    score: float | None
    error: str | None
    result: dict[str, Any] | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    claims: int
    ranked: bool
    backend: str | None = None  # what ran it: slurm, local, modal or github (None until routed)
    route_reason: str | None = None  # why the router chose its site or fallback
    account: str = ""  # the submitter's account (users.name: 'discord:<id>' for Discord users); user_name
    # is what is shown (their display name)
    public_id: str = ""  # the submission's public id (unguessable; its number is for admins)
    hidden: bool = False  # its leaderboard is hidden
    late: bool = False  # its result was recorded at or after its leaderboard's deadline: it never ranks
    deleted: bool = False  # its submission was deleted (shown to admins only)
    pool_id: str | None = None  # the warm pool that ran it (None: a job of its own)
    gpu_seconds: float | None = None  # the GPU time it took, where known (a pool run: its time there x GPUs)


@dataclass(frozen=True)
class SubmissionCode:
    """A submission's code with what deciding who may read or delete it needs."""

    public_id: str
    account: str  # the submitter's account (users.name)
    user_name: str  # what is shown
    leaderboard: str | None
    file_name: str
    code: str
    created_at: datetime
    closed: bool  # its leaderboard's deadline has passed
    reveal_code: bool  # its leaderboard reveals ranked code after its deadline
    ranked: bool  # one of its runs is in the ranking (frozen at the deadline)
    hidden: bool  # its leaderboard is hidden
    deleted_at: datetime | None  # deleted (softly: kept for the audit trail, shown to no one but admins)


@dataclass(frozen=True)
class DeletedSubmission:
    """What deleting a submission did to its runs."""

    public_id: str
    unranked: int  # runs taken out of the ranking
    cancelled: int  # queued runs no worker had started: cancelled now
    cancel_requested: int  # running runs: their workers cancel the jobs


@dataclass(frozen=True)
class ClaimedRun:
    """A run a worker claimed: everything it needs to start (or find again) and record its job."""

    run_id: str
    submission_id: int
    mode: str
    secret: bool
    gpu_type: str | None
    requested_site: str | None
    site: str | None  # None until routed
    partition: str | None
    job_id: str | None
    attempt: int
    claims: int  # 1: first claim; more: taken over from a worker that stopped
    result_key: str | None  # an unfinished run's key; NULL once a run is recorded (migration 0007)
    user_name: str
    file_name: str
    code: str
    leaderboard: str | None
    task: dict[str, Any] | None
    secret_seed: int | None  # the leaderboard's, for secret reruns only


@dataclass(frozen=True)
class RunEvent:
    id: int
    run_id: str
    at: datetime
    kind: str  # state | progress | finished
    state: str
    message: str  # for people (the CLI, logs); a front end reads fields from ``data``
    data: Mapping[str, Any] | None = None  # structured fields: the routing event's site, partition,
    # gpu_type, backend and why (migration 0010)


@dataclass(frozen=True)
class SiteHealth:
    site: str
    drained: bool
    drain_reason: str | None
    consecutive_failures: int
    last_error: str | None
    last_ok_at: datetime | None
    last_failure_at: datetime | None


@dataclass(frozen=True)
class IsolationCheck:
    """The last check of a site's sandbox: passed for the isolation settings whose digest it names."""

    site: str
    digest: str
    kind: str
    passed: bool
    detail: str
    checked_at: datetime


@dataclass(frozen=True)
class Standing:
    """A user's place on one GPU type of a leaderboard: rank of total ranked users, with their best."""

    rank: int
    total: int
    score: float
    run_id: str


@dataclass(frozen=True)
class SiteStats:
    site: str
    runs: int
    failed: int
    median_wait_s: float | None  # queued until the job started
    median_total_s: float | None  # queued until the result was recorded


@dataclass(frozen=True)
class GatewayStats:
    users: int
    leaderboards: int
    submissions: int
    runs: int
    recent_runs: int  # queued in the last window_s seconds
    window_s: int
    unfinished: dict[str, int]  # state -> runs
    sites: list[SiteStats]  # runs finished in the last window_s seconds
