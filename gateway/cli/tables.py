"""Rich tables for the admin commands: leaderboards, runs with their events, sites' health.

Every string a user, their code or a site chose goes in through ``output.plain``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.cli.output import RunView, plain, view_of_report
from gateway.formatting import duration, format_seconds

if TYPE_CHECKING:  # type names only: the service loads when a command runs, not for --help
    from gateway.service import (
        IsolationCheck,
        LeaderboardSummary,
        LeaderboardView,
        RankedEntry,
        RateLimit,
        RunEvent,
        RunRecord,
        RunReport,
        SiteHealth,
    )
    from gateway.sites import SiteConfig

STATE_STYLE = {"COMPLETED": "green", "FAILED": "red", "CANCELLED": "yellow", "TIMEOUT": "red"}


def when(moment: datetime | None) -> str:
    """A time in this machine's zone, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def deadline_text(deadline: datetime | None, now: datetime | None = None) -> Text:
    if deadline is None:
        return Text("none (open)")
    closed = deadline <= (now or datetime.now(UTC))
    shown = deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Text.assemble(shown, " ", ("(closed)", "red") if closed else ("(open)", "green"))


def limit_text(limit: RateLimit) -> str:
    return f"{limit.max_submissions} {limit.mode} submission(s) per {duration(limit.per_seconds)} per user"


def unfinished_text(cap: int | None, default: int) -> str:
    """A leaderboard's cap on each user's unfinished runs (None: the gateway's default, 0: none)."""
    if cap is not None:
        return f"at most {cap} unfinished runs per user (this leaderboard's cap)"
    if default:
        return f"at most {default} unfinished runs per user (the gateway's default)"
    return "no cap on unfinished runs (the gateway's default)"


def print_leaderboards(console: Console, boards: list[LeaderboardSummary], show_hidden: bool) -> None:
    table = Table(title="leaderboards", title_justify="left")
    for column in ("name", "GPU types", "deadline", "submissions", "runs"):
        right = column in ("submissions", "runs")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    table.add_column("description", no_wrap=True, overflow="ellipsis", max_width=50)
    if show_hidden:
        table.add_column("visibility")
    for board in boards:
        row: list[Text | str] = [
            plain(board.name),
            plain(", ".join(board.gpu_types)),
            deadline_text(board.deadline),
            str(board.submissions),
            str(board.runs),
            plain(board.description.strip().splitlines()[0][:60] if board.description.strip() else ""),
        ]
        if show_hidden:
            row.append(board.visibility)
        table.add_row(*row)
    if not boards:
        table.add_row("no leaderboards yet", *["-"] * (len(table.columns) - 1))
    console.print(table)


def print_board_header(console: Console, view: LeaderboardView, default_unfinished_cap: int = 0) -> None:
    board = view.board
    lines = [
        Text.assemble(
            "task ",
            plain(board.task.get("name")),
            f", ranked by {board.ranking_by}, GPU types ",
            plain(", ".join(board.gpu_types)),
            f", {board.visibility}",
        ),
        Text.assemble("deadline: ", deadline_text(board.deadline)),
        Text("rate limits: " + ("; ".join(limit_text(limit) for limit in view.limits) or "none")),
        Text(unfinished_text(board.max_unfinished_per_user, default_unfinished_cap)),
    ]
    if board.description.strip():
        lines.append(plain(board.description.strip()))
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def print_runs(console: Console, runs: Iterable[RunRecord], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("run", "queued", "user", "leaderboard", "file", "mode", "gpu", "where", "job"):
        table.add_column(column, overflow="fold")
    table.add_column("state")
    table.add_column("score", justify="right")
    count = 0
    for run in runs:
        count += 1
        where = f"{run.site}/{run.partition}" if run.site else "(not routed)"
        table.add_row(
            run.run_id[:8],
            when(run.queued_at),
            plain(run.user_name),
            plain(run.leaderboard),
            plain(run.file_name),
            run.mode + (" (secret)" if run.secret else ""),
            plain(run.gpu_type),
            plain(where),
            plain(run.job_id),
            Text(run.state, style=STATE_STYLE.get(run.state, "")),
            format_seconds(run.score) if run.score is not None else verdict(run),
        )
    if not count:
        table.add_row("-", "-", "no runs match", *["-"] * (len(table.columns) - 3))
    console.print(table)


def verdict(run: RunRecord) -> str:
    if run.finished_at is None:
        return "…"
    return "passed" if run.passed else "failed"


def print_run(
    console: Console, run: RunRecord, report: RunReport | RunView, events: list[RunEvent] | None
) -> None:
    """Every field of a run, its tests and benchmarks, and its events (None: not known here, as over the
    HTTP API, where `gateway runs watch` follows them)."""
    view = report if isinstance(report, RunView) else view_of_report(report)
    fields = Table(title=Text(f"run {run.run_id}"), title_justify="left", show_header=False)
    fields.add_column("field", style="bold")
    fields.add_column("value", overflow="fold")
    wall = (
        format_seconds((run.finished_at - run.started_at).total_seconds())
        if run.started_at and run.finished_at
        else "-"
    )
    rows: list[tuple[str, Text]] = [
        ("state", Text(run.state, style=STATE_STYLE.get(run.state, ""))),
        ("verdict", Text(verdict(run) + ("  (ranked)" if run.ranked else ""))),
        ("user", plain(run.user_name)),
        ("leaderboard", plain(run.leaderboard)),
        ("file", plain(run.file_name)),
        ("submission", Text(run.public_id if run.submission_id == 0 else str(run.submission_id))),
        ("mode", Text(run.mode + ("  (secret rerun with hidden inputs)" if run.secret else ""))),
        ("GPU type", plain(run.gpu_type)),
        ("site / partition", plain(f"{run.site}/{run.partition}" if run.site else None, "(not routed)")),
        ("backend", plain(run.backend, "(not routed)")),
        ("routed because", plain(run.route_reason)),
        ("job / attempt", Text.assemble(plain(run.job_id), f"  attempt {run.attempt}")),
        ("worker / claims", Text.assemble(plain(run.worker, "(none)"), f"  claimed {run.claims} time(s)")),
        ("queued", Text(when(run.queued_at))),
        ("started", Text(when(run.started_at))),
        ("finished", Text(when(run.finished_at))),
        ("ran for", Text(wall)),
        ("score", Text(format_seconds(run.score))),
        ("ran on", plain(ran_on(view))),
        ("error", plain(run.error)),
    ]
    for name, value in rows:
        fields.add_row(name, value)
    console.print(fields)
    if view.tests or view.benchmarks:
        cases = Table(title="tests and benchmarks", title_justify="left")
        for column in ("kind", "case", "status", "mean", "best", "runs", "error"):
            cases.add_column(column, justify="right" if column in ("mean", "best", "runs") else "left")
        for test in view.tests:
            cases.add_row("test", plain(test.spec), pass_fail(test.passed), "", "", "", plain(test.error, ""))
        for bench in view.benchmarks:
            cases.add_row(
                "benchmark",
                plain(bench.spec),
                pass_fail(bench.passed),
                format_seconds(bench.mean_s) if bench.mean_s is not None else "-",
                format_seconds(bench.best_s) if bench.best_s is not None else "-",
                str(bench.runs) if bench.runs is not None else "-",
                plain(bench.error, ""),
            )
        console.print(cases)
    if events is None:
        return
    log = Table(title="events", title_justify="left")
    for column in ("at", "kind", "state", "message"):
        log.add_column(column, overflow="fold")
    for event in events:
        log.add_row(when(event.at), event.kind, plain(event.state), plain(event.message))
    if not events:
        log.add_row("-", "-", "-", "no events recorded")
    console.print(log)


def ran_on(view: RunView) -> str | None:
    system = view.system
    if not system:
        return None
    device = system.get("gpu") or system.get("cpu") or system.get("device") or "?"
    return f"{system.get('hostname', '?')}: {device}, torch {system.get('torch') or '?'}"


@dataclass(frozen=True)
class SubmissionRow:
    """One of a user's submissions as `gateway runs mine` lists it (local records or the API's JSON)."""

    submission_id: str
    queued_at: datetime | None
    leaderboard: str | None
    file_name: str
    mode: str
    gpu_type: str | None
    state: str
    passed: bool | None
    score: float | None
    public_run_id: str


def submission_row(runs: list[RunRecord]) -> SubmissionRow:
    public = runs[0]
    finished = all(r.finished_at is not None for r in runs)
    return SubmissionRow(
        public.public_id,
        public.queued_at,
        public.leaderboard,
        public.file_name,
        public.mode,
        public.gpu_type,
        public.state,
        all(r.passed is True for r in runs) if finished else None,
        public.score,
        public.run_id,
    )


def submission_row_of(item: Mapping[str, Any]) -> SubmissionRow:
    """A row from the API's SubmissionSummaryOut, read leniently."""
    return SubmissionRow(
        str(item.get("submission_id", "")),
        _moment(item.get("queued_at")),
        _text(item.get("leaderboard")),
        str(item.get("file_name", "")),
        str(item.get("mode", "")),
        _text(item.get("gpu_type")),
        str(item.get("state", "UNKNOWN")),
        item.get("passed") if isinstance(item.get("passed"), bool) else None,
        _number(item.get("score")),
        str(item.get("public_run_id", "")),
    )


def print_submissions(console: Console, rows: list[SubmissionRow], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("submission", "queued", "leaderboard", "file", "mode", "gpu", "run"):
        table.add_column(column, overflow="fold")
    table.add_column("state")
    table.add_column("verdict")
    table.add_column("score", justify="right")
    for row in rows:
        table.add_row(
            row.submission_id,
            when(row.queued_at),
            plain(row.leaderboard),
            plain(row.file_name),
            plain(row.mode),
            plain(row.gpu_type),
            row.public_run_id,
            Text(row.state, style=STATE_STYLE.get(row.state, "")),
            "…" if row.passed is None else pass_fail(row.passed),
            format_seconds(row.score) if row.score is not None else "-",
        )
    if not rows:
        table.add_row("-", "-", "no submissions", *["-"] * (len(table.columns) - 3))
    console.print(table)


# -- the HTTP API's JSON as the records the tables print (gateway/api/schemas.py) ---------------------


def record_of_run(run: Mapping[str, Any]) -> RunRecord:
    """A run as the API sends it (RunOut), as the record the run tables print; read leniently."""
    from gateway.service import RunRecord

    return RunRecord(
        run_id=str(run.get("run_id", "")),
        submission_id=0,  # the API shows the public id only
        user_name=str(run.get("user", "")),
        file_name=str(run.get("file_name", "")),
        leaderboard=_text(run.get("leaderboard")),
        mode=str(run.get("mode", "")),
        secret=run.get("secret") is True,
        gpu_type=_text(run.get("gpu_type")),
        site=_text(run.get("site")),
        partition=_text(run.get("partition")),
        job_id=_text(run.get("job_id")),
        attempt=run["attempt"] if isinstance(run.get("attempt"), int) else 1,
        state=str(run.get("state") or "UNKNOWN"),
        passed=run.get("passed") if isinstance(run.get("passed"), bool) else None,
        score=_number(run.get("score")),
        error=_text(run.get("error")),
        result=None,
        queued_at=_moment(run.get("queued_at")) or datetime.now(UTC),
        started_at=_moment(run.get("started_at")),
        finished_at=_moment(run.get("finished_at")),
        worker=None,
        claims=0,
        ranked=run.get("ranked") is True,
        backend=_text(run.get("backend")),
        public_id=str(run.get("submission_id", "")),
    )


def summary_of(board: Mapping[str, Any]) -> LeaderboardSummary:
    """A leaderboard as the API lists it (LeaderboardOut)."""
    from gateway.service import LeaderboardSummary

    gpus = board.get("gpu_types")
    return LeaderboardSummary(
        name=str(board.get("name", "")),
        description=str(board.get("description") or ""),
        gpu_types=[str(g) for g in gpus] if isinstance(gpus, list) else [],
        deadline=_moment(board.get("deadline")),
        visibility=str(board.get("visibility") or "public"),
        submissions=board["submissions"] if isinstance(board.get("submissions"), int) else 0,
        runs=board["runs"] if isinstance(board.get("runs"), int) else 0,
    )


def view_of_api(board: Mapping[str, Any], rankings: list[Any], recent: list[Any]) -> LeaderboardView:
    """A leaderboard's page as the API gives it (LeaderboardOut, [RankingOut], [RunOut]), as the view the
    leaderboard table prints."""
    from gateway.service import LeaderboardRecord, LeaderboardView, RankedEntry

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
                score=_number(e.get("score")) or 0.0,
                run_id=str(e.get("run_id", "")),
                file_name=str(e.get("file_name", "")),
                site=str(e.get("site", "")),
                submitted_at=_moment(e.get("submitted_at")) or datetime.now(UTC),
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


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def pass_fail(passed: bool) -> Text:
    return Text("pass", style="green") if passed else Text("fail", style="red")


def print_site_health(
    console: Console,
    sites: dict[str, SiteConfig],
    health: dict[str, SiteHealth],
    isolation: dict[str, IsolationCheck],
) -> None:
    """The configured sites (health recorded for sites no longer configured here is left out)."""
    table = Table(title="sites", title_justify="left")
    columns = ("site", "GPU types", "routing", "isolation", "failures in a row", "last ok", "last failure",
               "last error")  # fmt: skip
    for column in columns:
        table.add_column(column, overflow="fold")
    for name, site in sorted(sites.items()):
        seen = health.get(name)
        if seen is not None and seen.drained:
            routing = Text.assemble(("drained", "bold red"), ": ", plain(seen.drain_reason, "no reason"))
        else:
            routing = Text("open", style="green")
        table.add_row(
            plain(name),
            plain(", ".join(site.gpu_types()), "(this machine)"),
            routing,
            isolation_state(site, isolation.get(name)),
            str(seen.consecutive_failures) if seen else "0",
            when(seen.last_ok_at) if seen else "-",
            when(seen.last_failure_at) if seen else "-",
            plain(seen.last_error if seen else None),
        )
    console.print(table)


def isolation_state(site: SiteConfig, check: IsolationCheck | None) -> Text:
    """The sandbox a site puts around submitted code, and whether its probe passed (leaderboard runs)."""
    kind = site.isolation.kind
    if not site.isolation.confined:
        modes = ", ".join(site.isolation.unconfined_modes) or "nothing"
        return Text.assemble(("none", "bold red"), f": unconfined, takes {modes}")
    if site.kind != "slurm":
        return Text(kind)
    if check is None:
        return Text.assemble(kind, ", ", ("not verified", "yellow"))
    if check.digest != site.isolation.digest():
        return Text.assemble(kind, ", ", ("changed since its check", "yellow"))
    if check.passed:
        return Text.assemble(kind, ", ", ("verified", "green"), f" {when(check.checked_at)}")
    return Text.assemble(
        kind, ", ", ("probe failed", "bold red"), f" {when(check.checked_at)}: ", check.detail
    )
