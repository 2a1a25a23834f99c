"""Rich tables for the admin commands: leaderboards, runs with their events, sites' health.

Every string a user, their code or a site chose goes in through ``output.plain``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.cli.output import plain
from gateway.core.formatting import duration, format_seconds

if TYPE_CHECKING:  # type names only: the service loads when a command runs, not for --help
    from gateway.config.sites import SiteConfig
    from gateway.service.facade import (
        IsolationCheck,
        LeaderboardSummary,
        LeaderboardView,
        RateLimit,
        RunEvent,
        RunRecord,
        SiteHealth,
    )
    from gateway.service.runview import RunView

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


def verdict(run: RunRecord | RunView) -> str:
    if run.finished_at is None:
        return "…"
    return "passed" if run.passed else "failed"


def print_run(console: Console, view: RunView, events: list[RunEvent] | None) -> None:
    """Every field of a run, its tests and benchmarks, and its events (None: not known here, as over the
    HTTP API, where `gateway runs watch` follows them)."""
    fields = Table(title=Text(f"run {view.run_id}"), title_justify="left", show_header=False)
    fields.add_column("field", style="bold")
    fields.add_column("value", overflow="fold")
    wall = (
        format_seconds((view.finished_at - view.started_at).total_seconds())
        if view.started_at and view.finished_at
        else "-"
    )
    route = view.route
    rows: list[tuple[str, Text]] = [
        ("state", Text(view.state, style=STATE_STYLE.get(view.state, ""))),
        ("verdict", Text(verdict(view) + ("  (ranked)" if view.ranked else ""))),
        ("user", plain(view.user)),
        ("leaderboard", plain(view.leaderboard)),
        ("file", plain(view.file_name)),
        ("submission", Text(view.public_id if view.submission_id == 0 else str(view.submission_id))),
        ("mode", Text(view.mode + ("  (secret rerun with hidden inputs)" if view.secret else ""))),
        ("GPU type", plain(view.gpu_type)),
        ("site / partition", plain(f"{route.site}/{route.partition}" if route else None, "(not routed)")),
        ("backend", plain(route.backend if route else None, "(not routed)")),
        ("routed because", plain(route.why if route else None)),
        ("job / attempt", Text.assemble(plain(view.job_id), f"  attempt {view.attempt}")),
        ("worker / claims", Text.assemble(plain(view.worker, "(none)"), f"  claimed {view.claims} time(s)")),
        ("queued", Text(when(view.queued_at))),
        ("started", Text(when(view.started_at))),
        ("finished", Text(when(view.finished_at))),
        ("ran for", Text(wall)),
        ("score", Text(format_seconds(view.score))),
        ("ran on", plain(ran_on(view))),
        ("error", plain(view.error)),
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
                str(bench.runs) if bench.runs is not None and bench.mean_s is not None else "-",
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
