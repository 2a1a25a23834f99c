"""One run as the front ends show it: who, what and where (the route as data), its state and times, and its
parsed result with every timing in seconds. The CLI, the bot, the HTTP API and the web pages render this
and nothing else.

Built in one place from a recorded run (``run_view``) or from a live report (``view_of_report``: `gateway
submit` without a database). A secret rerun's result (tests, timings, profiles, system, score) is left out
unless the caller is the gateway's operator (``reveal_secret``): its inputs are hidden, and each of those
would tell them. This module imports only the standard library and the harness's result contract, so the
CLI can load it without the service."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from harness.protocol import HarnessError
from harness.run_result import RunResult

if TYPE_CHECKING:  # type names only: neither is needed to build a view
    from gateway.running.execution import RunReport
    from gateway.store.records import RunRecord

log = logging.getLogger(__name__)
# what a secret rerun's error reads as to everyone but the operator: its text may quote hidden inputs
HIDDEN_ERROR = "(hidden: a secret rerun shows only whether it passed)"
NS = 1e-9  # the harness reports nanoseconds; a view holds seconds (the one conversion)


def seconds(ns: float) -> float:
    return ns * NS


@dataclass(frozen=True)
class CaseView:
    """One test or benchmark. A benchmark's timings are seconds, None when it did not pass."""

    spec: str
    passed: bool
    error: str | None = None
    runs: int | None = None  # benchmarks only (also for a failed one: how many ran)
    mean_s: float | None = None
    best_s: float | None = None
    worst_s: float | None = None
    std_s: float | None = None


@dataclass(frozen=True)
class ProfileView:
    """Profile mode's table of one benchmark, as the submission's process made it."""

    spec: str
    report: str


@dataclass(frozen=True)
class NcuView:
    """Where a run's Nsight Compute report is (``url``, ``size``), or why it has none (``error``)."""

    url: str | None = None
    size: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Route:
    """Where a run went: its site and partition, the backend that ran it and why the router chose it."""

    site: str
    partition: str | None = None
    backend: str | None = None  # slurm, local, modal or github
    why: str | None = None


@dataclass(frozen=True)
class RunView:
    run_id: str
    user: str
    file_name: str
    gpu_type: str | None
    state: str
    passed: bool | None  # None until it finished
    score: float | None  # seconds
    error: str | None
    route: Route | None = None  # None until routed
    mode: str = ""
    secret: bool = False
    leaderboard: str | None = None
    submission_id: int = 0  # the number (for admins); 0 where only the public id is known
    public_id: str = ""
    account: str = ""
    job_id: str | None = None
    attempt: int = 1
    worker: str | None = None
    claims: int = 0
    ranked: bool = False
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    has_result: bool = False
    tests: tuple[CaseView, ...] = ()
    benchmarks: tuple[CaseView, ...] = ()
    profiles: tuple[ProfileView, ...] = ()
    ncu: NcuView | None = None
    system: Mapping[str, Any] = field(default_factory=dict)
    failure_message: str | None = None  # the result's own account of a failure
    redacted: bool = False  # a secret rerun shown without its result
    secret_passed: bool | None = None  # set by a front end that shows the rerun's verdict beside the run
    output_tail: str = ""  # a live run's last output lines (a recorded run keeps none)

    @property
    def site(self) -> str | None:
        return self.route.site if self.route else None

    @property
    def partition(self) -> str | None:
        return self.route.partition if self.route else None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


def run_view(record: RunRecord, *, reveal_secret: bool = False) -> RunView:
    """A recorded run as shown. A secret rerun's result is left out unless ``reveal_secret`` (only the
    gateway's operator on its own machine: the CLI's `runs show`)."""
    hide = record.secret and not reveal_secret
    result = None if hide else parsed_result(record)
    return RunView(
        run_id=record.run_id,
        user=record.user_name,
        file_name=record.file_name,
        gpu_type=record.gpu_type,
        state=record.state,
        passed=record.passed,
        score=None if hide else record.score,
        error=HIDDEN_ERROR if hide and record.error else record.error,
        route=Route(record.site, record.partition, record.backend, record.route_reason)
        if record.site
        else None,
        mode=record.mode,
        secret=record.secret,
        leaderboard=record.leaderboard,
        submission_id=record.submission_id,
        public_id=record.public_id,
        account=record.account,
        job_id=record.job_id,
        attempt=record.attempt,
        worker=record.worker,
        claims=record.claims,
        ranked=record.ranked,
        queued_at=record.queued_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        redacted=hide,
        **_result_fields(record.run_id, result),
    )


def view_of_report(report: RunReport) -> RunView:
    """A run this process ran itself (`gateway submit`, `runs resume`), as shown."""
    return RunView(
        run_id=report.run_id,
        user=report.user,
        file_name=report.file_name,
        gpu_type=report.gpu_type,
        state=report.state.value,
        passed=report.passed,
        score=report.score,
        error=report.error,
        route=Route(report.site, report.partition) if report.site else None,
        leaderboard=report.leaderboard,
        job_id=report.job_id,
        attempt=report.attempt,
        secret_passed=report.secret_passed,
        output_tail=report.output_tail,
        **_result_fields(report.run_id, report.result),
    )


def parsed_result(record: RunRecord) -> RunResult | None:
    """A recorded run's result, parsed; None when it has none or it no longer parses (logged)."""
    if record.result is None:
        return None
    try:
        return RunResult.from_payload(record.result)
    except HarnessError as exc:
        log.warning("run %s: stored result unreadable: %s", record.run_id, exc)
        return None


def _result_fields(run_id: str, result: RunResult | None) -> dict[str, Any]:
    if result is None:
        return {}
    return {
        "has_result": True,
        "tests": tuple(CaseView(t.spec, t.passed, t.error) for t in result.tests),
        "benchmarks": tuple(
            CaseView(
                b.spec,
                b.passed,
                b.error,
                b.runs,
                seconds(b.mean_ns) if b.passed else None,
                seconds(b.best_ns) if b.passed else None,
                seconds(b.worst_ns) if b.passed else None,
                seconds(b.std_ns) if b.passed else None,
            )
            for b in result.benchmarks
        ),
        "profiles": tuple(ProfileView(p.spec, p.report) for p in result.profiles),
        "ncu": ncu_view(run_id, result.ncu),
        "system": result.system,
        "failure_message": result.failure_message,
    }


def ncu_view(run_id: str, signed: Mapping[str, Any] | None) -> NcuView | None:
    """What a run's result says of its Nsight Compute report: where the API serves it, or why it has none."""
    if signed is None:
        return None
    if "error" in signed:
        return NcuView(error=str(signed["error"]))
    return NcuView(url=f"/api/runs/{run_id}/profile.ncu-rep", size=signed.get("size"))
