"""Rich tables for the admin commands: leaderboards, runs with their events, sites' health.

Every string a user, their code or a site chose goes in through ``output.plain``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.cli.output import plain
from gateway.formatting import duration, format_seconds

if TYPE_CHECKING:  # type names only: the service loads when a command runs, not for --help
    from gateway.service import (
        IsolationCheck,
        LeaderboardSummary,
        LeaderboardView,
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


def print_run(console: Console, run: RunRecord, report: RunReport, events: list[RunEvent]) -> None:
    """Every field of a run, its tests and benchmarks, and its events."""
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
        ("submission", Text(str(run.submission_id))),
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
        ("ran on", plain(ran_on(report))),
        ("error", plain(run.error)),
    ]
    for name, value in rows:
        fields.add_row(name, value)
    console.print(fields)
    result = report.result
    if result is not None and (result.tests or result.benchmarks):
        cases = Table(title="tests and benchmarks", title_justify="left")
        for column in ("kind", "case", "status", "mean", "best", "runs", "error"):
            cases.add_column(column, justify="right" if column in ("mean", "best", "runs") else "left")
        for test in result.tests:
            cases.add_row("test", plain(test.spec), pass_fail(test.passed), "", "", "", plain(test.error, ""))
        for bench in result.benchmarks:
            cases.add_row(
                "benchmark",
                plain(bench.spec),
                pass_fail(bench.passed),
                format_seconds(bench.mean_ns * 1e-9) if bench.passed else "-",
                format_seconds(bench.best_ns * 1e-9) if bench.passed else "-",
                str(bench.runs) if bench.passed else "-",
                plain(bench.error, ""),
            )
        console.print(cases)
    log = Table(title="events", title_justify="left")
    for column in ("at", "kind", "state", "message"):
        log.add_column(column, overflow="fold")
    for event in events:
        log.add_row(when(event.at), event.kind, plain(event.state), plain(event.message))
    if not events:
        log.add_row("-", "-", "-", "no events recorded")
    console.print(log)


def ran_on(report: RunReport) -> str | None:
    system = report.result.system if report.result is not None else None
    if not system:
        return None
    device = system.get("gpu") or system.get("cpu") or system.get("device") or "?"
    return f"{system.get('hostname', '?')}: {device}, torch {system.get('torch') or '?'}"


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
