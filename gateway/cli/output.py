"""Rich tables for the CLI: a run's tests, benchmarks and score; a leaderboard.

Every string that a user or their code chose (names, test specs, error messages) goes in through
``plain``: rich Text, so it is shown as written and never read as markup, with control characters shown
as escapes, so it cannot restyle or rewrite the terminal."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.core.formatting import format_seconds
from gateway.core.validation import printable

if TYPE_CHECKING:  # type names only: the service loads when a command runs, not for --help
    from gateway.service.facade import LeaderboardView, RunReport
    from gateway.service.runview import NcuView, ProfileView, RunView


def plain(value: object | None, empty: str = "-") -> Text:
    """``value`` as Text, shown as written: no markup, control characters (other than newlines and tabs)
    and undecodable bytes as escapes."""
    if value is None or value == "":
        return Text(empty, style="dim")
    text = str(value)
    return Text("".join(c if printable(c) or c in "\n\t" else ascii(c)[1:-1] for c in text))


def print_report(console: Console, view: RunView, saved_ncu: Path | None = None) -> None:
    """A run's result table: each test and benchmark, where it ran, the secret rerun's verdict, the
    verdict with the score (or the error, and the job's last output lines when there is no result);
    profile mode's tables and where its Nsight Compute report is (``saved_ncu``: saved here)."""
    title = (
        f"{view.file_name} by {view.user} on {view.site or ''}/{view.partition or ''} "
        f"({view.gpu_type or 'local'}), job {view.job_id or '-'}, run {view.run_id}"
    )
    table = Table(title=plain(title), title_justify="left")  # names are the users': never markup
    table.add_column("kind")
    table.add_column("case")
    table.add_column("status")
    table.add_column("mean", justify="right")
    table.add_column("best", justify="right")
    table.add_column("runs", justify="right")
    table.add_column("error", overflow="fold")
    for test in view.tests:
        status = "[green]pass[/]" if test.passed else "[red]fail[/]"
        table.add_row("test", plain(test.spec), status, "", "", "", plain(test.error, ""))
    for bench in view.benchmarks:
        status = "[green]pass[/]" if bench.passed else "[red]fail[/]"
        table.add_row(
            "benchmark",
            plain(bench.spec),
            status,
            format_seconds(bench.mean_s) if bench.mean_s is not None else "-",
            format_seconds(bench.best_s) if bench.best_s is not None else "-",
            str(bench.runs) if bench.runs is not None and bench.mean_s is not None else "-",
            plain(bench.error, ""),
        )
    console.print(table)
    if view.system:
        system = view.system
        device = system.get("gpu") or system.get("cpu") or system.get("device", "?")
        line = plain(f"ran on {system.get('hostname', '?')}: {device}, torch {system.get('torch') or '?'}")
        line.stylize("dim")
        console.print(line, highlight=False)
    print_profiles(console, view.profiles)
    print_ncu(console, view.ncu, saved_ncu)
    if view.secret_passed is not None:
        verdict = "[green]passed[/]" if view.secret_passed else "[red]failed[/] (the run is not ranked)"
        console.print(f"secret rerun (hidden inputs): {verdict}")
    if view.passed:
        score = (
            f"score {format_seconds(view.score)}"
            if view.score is not None
            else "profiled: the tables are above"
            if view.profiles
            else "no timings in this mode"
        )
        console.print(f"[bold green]passed[/]  {score}  (state {view.state})")
    else:
        state = f"  (state {view.state})"
        console.print(Text.assemble(("failed", "bold red"), "  ", plain(view.error), state))
        if not view.has_result and view.output_tail.strip():
            console.print("[dim]last lines of the job's output:[/]")
            console.print(plain(view.output_tail.strip()[-1500:]), highlight=False)


def print_profiles(console: Console, profiles: Iterable[ProfileView]) -> None:
    """Profile mode's tables, each under the benchmark it profiled. The submission's process made them, so
    they go through ``plain`` and are said to be its output; lines are not wrapped (the table is wide)."""
    for profile in profiles:
        console.print(
            Text.assemble(
                ("profile of ", "bold"),
                plain(profile.spec),
                (" (torch.profiler, in the submission's process)", "dim"),
            )
        )
        console.print(plain(profile.report.rstrip(), "(empty)"), highlight=False, soft_wrap=True)


def print_ncu(console: Console, ncu: NcuView | None, saved: Path | None = None) -> None:
    """Where the run's Nsight Compute report is: saved here, or on the gateway's API; or why there is none."""
    if ncu is None:
        return
    if ncu.error:
        console.print(Text.assemble(("no Nsight Compute report: ", "yellow"), plain(ncu.error)))
        return
    about = "Nsight Compute report"
    if ncu.size is not None:
        size = ncu.size
        about += f" ({size / 2**20:.1f} MiB)" if size >= 2**20 else f" ({size / 1024:.1f} KiB)"
    where = f"saved to {saved}" if saved else f"download it from the gateway: GET {ncu.url}"
    # one line, however long: the path is for copying
    console.print(Text.assemble((about, "bold"), ": ", plain(where)), highlight=False, soft_wrap=True)


def save_ncu_report(report: RunReport, source: Path) -> Path | None:
    """A local run's Nsight Compute report, saved next to the submitted file as
    ``<file>.<run>.ncu-rep``; None when it has none (or it could not be written: the API keeps it)."""
    if report.ncu_report is None:
        return None
    target = source.with_name(f"{source.name}.{report.run_id[:8]}.ncu-rep")
    try:
        target.write_bytes(report.ncu_report)
    except OSError:
        return None
    return target


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
