"""The HTTP API's JSON (gateway/http/api/schemas.py) read back, leniently, as the run views and records the
CLI's tables print: a field a server leaves out shows as missing rather than failing the command."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.cli.tables import SubmissionRow
from gateway.service.runview import CaseView, NcuView, ProfileView, Route, RunView

if TYPE_CHECKING:  # type names only: the service loads when a command runs, not for --help
    from gateway.service.facade import LeaderboardSummary, LeaderboardView, RunRecord


def view_of_run(run: Mapping[str, Any], secret_passed: bool | None = None) -> RunView:
    """A run as the HTTP API sends it (gateway/http/api/schemas.py ``RunOut``) as the view the tables print,
    read leniently: a field a server leaves out shows as missing rather than failing the command."""

    def text(key: str) -> str:
        value = run.get(key)
        return "" if value is None else str(value)

    def optional(key: str) -> str | None:
        return text(key) or None

    def rows(key: str) -> tuple[CaseView, ...]:
        items = run.get(key)
        return tuple(
            CaseView(
                str(item.get("spec", "")),
                item.get("passed") is True,
                None if item.get("error") is None else str(item.get("error")),
                item["runs"] if isinstance(item.get("runs"), int) else None,
                number(item.get("mean_s")),
                number(item.get("best_s")),
                number(item.get("worst_s")),
                number(item.get("std_s")),
            )
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, Mapping)
        )

    tests, benchmarks = rows("tests"), rows("benchmarks")
    items = run.get("profile")
    profiles = tuple(
        ProfileView(str(item.get("spec", "")), str(item.get("report", "")))
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, Mapping)
    )
    system = run.get("system")
    ncu = run.get("ncu_report")
    size = ncu.get("size") if isinstance(ncu, Mapping) else None
    site = optional("site")
    return RunView(
        run_id=text("run_id"),
        user=text("user"),
        file_name=text("file_name"),
        gpu_type=optional("gpu_type"),
        state=text("state") or "UNKNOWN",
        passed=run.get("passed") if isinstance(run.get("passed"), bool) else None,
        score=number(run.get("score")),
        error=optional("error"),
        route=Route(site, optional("partition"), optional("backend")) if site else None,
        mode=text("mode"),
        secret=run.get("secret") is True,
        leaderboard=optional("leaderboard"),
        public_id=text("submission_id"),
        job_id=optional("job_id"),
        attempt=run["attempt"] if isinstance(run.get("attempt"), int) else 1,
        ranked=run.get("ranked") is True,
        queued_at=moment(run.get("queued_at")),
        started_at=moment(run.get("started_at")),
        finished_at=moment(run.get("finished_at")),
        has_result=bool(tests or benchmarks or system),
        tests=tests,
        benchmarks=benchmarks,
        profiles=profiles,
        ncu=NcuView(
            None if ncu.get("url") is None else str(ncu.get("url")),
            size if isinstance(size, int) and not isinstance(size, bool) else None,
            None if ncu.get("error") is None else str(ncu.get("error")),
        )
        if isinstance(ncu, Mapping)
        else None,
        system=system if isinstance(system, Mapping) else {},
        secret_passed=secret_passed,
    )


def number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def moment(value: object) -> datetime | None:
    """An ISO time from the API's JSON (UTC when it names no zone); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def submission_row_of(item: Mapping[str, Any]) -> SubmissionRow:
    """A row from the API's SubmissionSummaryOut, read leniently."""
    return SubmissionRow(
        str(item.get("submission_id", "")),
        moment(item.get("queued_at")),
        text_of(item.get("leaderboard")),
        str(item.get("file_name", "")),
        str(item.get("mode", "")),
        text_of(item.get("gpu_type")),
        str(item.get("state", "UNKNOWN")),
        item.get("passed") if isinstance(item.get("passed"), bool) else None,
        number(item.get("score")),
        str(item.get("public_run_id", "")),
    )


def record_of_run(run: Mapping[str, Any]) -> RunRecord:
    """A run as the API sends it (RunOut), as the record the run tables print; read leniently."""
    from gateway.service.facade import RunRecord

    return RunRecord(
        run_id=str(run.get("run_id", "")),
        submission_id=0,  # the API shows the public id only
        user_name=str(run.get("user", "")),
        file_name=str(run.get("file_name", "")),
        leaderboard=text_of(run.get("leaderboard")),
        mode=str(run.get("mode", "")),
        secret=run.get("secret") is True,
        gpu_type=text_of(run.get("gpu_type")),
        site=text_of(run.get("site")),
        partition=text_of(run.get("partition")),
        job_id=text_of(run.get("job_id")),
        attempt=run["attempt"] if isinstance(run.get("attempt"), int) else 1,
        state=str(run.get("state") or "UNKNOWN"),
        passed=run.get("passed") if isinstance(run.get("passed"), bool) else None,
        score=number(run.get("score")),
        error=text_of(run.get("error")),
        result=None,
        queued_at=moment(run.get("queued_at")) or datetime.now(UTC),
        started_at=moment(run.get("started_at")),
        finished_at=moment(run.get("finished_at")),
        worker=None,
        claims=0,
        ranked=run.get("ranked") is True,
        backend=text_of(run.get("backend")),
        public_id=str(run.get("submission_id", "")),
    )


def summary_of(board: Mapping[str, Any]) -> LeaderboardSummary:
    """A leaderboard as the API lists it (LeaderboardOut)."""
    from gateway.service.facade import LeaderboardSummary

    gpus = board.get("gpu_types")
    return LeaderboardSummary(
        name=str(board.get("name", "")),
        description=str(board.get("description") or ""),
        gpu_types=[str(g) for g in gpus] if isinstance(gpus, list) else [],
        deadline=moment(board.get("deadline")),
        visibility=str(board.get("visibility") or "public"),
        submissions=board["submissions"] if isinstance(board.get("submissions"), int) else 0,
        runs=board["runs"] if isinstance(board.get("runs"), int) else 0,
    )


def view_of_api(board: Mapping[str, Any], rankings: list[Any], recent: list[Any]) -> LeaderboardView:
    """A leaderboard's page as the API gives it (LeaderboardOut, [RankingOut], [RunOut]), as the view the
    leaderboard table prints."""
    from gateway.service.facade import LeaderboardRecord, LeaderboardView, RankedEntry

    ranking: dict[str, list[RankedEntry]] = {}
    for group in rankings:
        if not isinstance(group, Mapping):
            continue
        gpu = str(group.get("gpu_type", ""))
        entries = group.get("entries")
        ranking[gpu] = [
            RankedEntry(
                rank=e["rank"] if isinstance(e.get("rank"), int) else 0,
                user_name=str(e.get("user", "")),
                gpu_type=gpu,
                score=number(e.get("score")) or 0.0,
                run_id=str(e.get("run_id", "")),
                file_name=str(e.get("file_name", "")),
                site=str(e.get("site", "")),
                submitted_at=moment(e.get("submitted_at")) or datetime.now(UTC),
            )
            for e in (entries if isinstance(entries, list) else [])
            if isinstance(e, Mapping)
        ]
    summary = summary_of(board)
    record = LeaderboardRecord(
        id=0,
        name=summary.name,
        description=summary.description,
        task={},
        ranking_by=str(board.get("ranking_by") or "mean"),
        gpu_types=summary.gpu_types,
        deadline=summary.deadline,
        visibility=summary.visibility,
    )
    runs = [record_of_run(run) for run in recent if isinstance(run, Mapping)]
    return LeaderboardView(record, ranking, runs)


def text_of(value: object) -> str | None:
    return None if value is None else str(value)
