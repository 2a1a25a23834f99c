"""Rich tables for the CLI: a run's tests, benchmarks and score; a leaderboard.

Every string that a user or their code chose (names, test specs, error messages) goes in through
``plain``: rich Text, so it is shown as written and never read as markup, with control characters shown
as escapes, so it cannot restyle or rewrite the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.formatting import format_seconds
from gateway.service import LeaderboardView, RunReport
from gateway.validation import printable


def plain(value: object | None, empty: str = "-") -> Text:
    """``value`` as Text, shown as written: no markup, control characters (other than newlines and tabs)
    and undecodable bytes as escapes."""
    if value is None or value == "":
        return Text(empty, style="dim")
    text = str(value)
    return Text("".join(c if printable(c) or c in "\n\t" else ascii(c)[1:-1] for c in text))


def print_report(console: Console, report: RunReport) -> None:
    title = (
        f"{report.file_name} by {report.user} on {report.site}/{report.partition} ({report.gpu_type}), "
        f"job {report.job_id or '-'}, run {report.run_id}"
    )
    table = Table(title=plain(title), title_justify="left")  # names are the users': never markup
    table.add_column("kind")
    table.add_column("case")
    table.add_column("status")
    table.add_column("mean", justify="right")
    table.add_column("best", justify="right")
    table.add_column("runs", justify="right")
    table.add_column("error", overflow="fold")
    result = report.result
    if result is not None:
        for test in result.tests:
            status = "[green]pass[/]" if test.passed else "[red]fail[/]"
            table.add_row("test", plain(test.spec), status, "", "", "", plain(test.error, ""))
        for bench in result.benchmarks:
            status = "[green]pass[/]" if bench.passed else "[red]fail[/]"
            table.add_row(
                "benchmark",
                plain(bench.spec),
                status,
                format_seconds(bench.mean_ns * 1e-9) if bench.passed else "-",
                format_seconds(bench.best_ns * 1e-9) if bench.passed else "-",
                str(bench.runs) if bench.passed else "-",
                plain(bench.error, ""),
            )
    console.print(table)
    if result is not None and result.system:
        system = result.system
        device = system.get("gpu") or system.get("cpu") or system.get("device", "?")
        console.print(
            f"[dim]ran on {system.get('hostname', '?')}: {device}, torch {system.get('torch') or '?'}[/]",
            highlight=False,
        )
    if report.secret_passed is not None:
        verdict = "[green]passed[/]" if report.secret_passed else "[red]failed[/] (the run is not ranked)"
        console.print(f"secret rerun (hidden inputs): {verdict}")
    if report.passed:
        timed = report.score is not None
        score = f"score {format_seconds(report.score)}" if timed else "no timings in this mode"
        console.print(f"[bold green]passed[/]  {score}  (state {report.state})")
    else:
        state = f"  (state {report.state})"
        console.print(Text.assemble(("failed", "bold red"), "  ", plain(report.error), state))
        if result is None and report.output_tail.strip():
            console.print("[dim]last lines of the job's output:[/]")
            console.print(plain(report.output_tail.strip()[-1500:]), highlight=False)


def print_leaderboard(console: Console, view: LeaderboardView) -> None:
    board = view.board
    table = Table(
        title=plain(f"leaderboard {board.name} (ranked by {board.ranking_by}, lower is better)"),
        title_justify="left",
    )
    for column in ("gpu", "rank", "user", "score", "submitted", "file", "site", "run"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    entries = [entry for ranked in view.ranking.values() for entry in ranked]
    for entry in entries:
        table.add_row(
            entry.gpu_type,
            str(entry.rank),
            plain(entry.user_name),
            format_seconds(entry.score),
            entry.submitted_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            plain(entry.file_name),
            entry.site,
            entry.run_id[:8],
        )
    if not entries:
        table.add_row("-", "-", "no passing leaderboard runs yet", "-", "-", "-", "-", "-")
    console.print(table)
    failed, seen = [], set()
    for run in view.recent:  # newest first: show each user's latest failure of each file once
        if run.passed is False and (run.user_name, run.file_name) not in seen:
            seen.add((run.user_name, run.file_name))
            failed.append(run)
    if failed:
        fails = Table(title="recent failed runs", title_justify="left")
        for column in ("user", "file", "gpu", "site", "state", "error", "run"):
            fails.add_column(column, overflow="fold" if column == "error" else "ellipsis")
        for run in failed:
            fails.add_row(
                plain(run.user_name),
                plain(run.file_name),
                run.gpu_type or "-",
                run.site or "-",
                run.state,
                plain(run.error, ""),
                run.run_id[:8],
            )
        console.print(fails)
