"""Rich tables for the CLI: a run's tests, benchmarks and score; a leaderboard.

Every string that a user or their code chose (names, test specs, error messages) goes in through
``plain``: rich Text, so it is shown as written and never read as markup, with control characters shown
as escapes, so it cannot restyle or rewrite the terminal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.formatting import format_seconds
from gateway.validation import printable

if TYPE_CHECKING:  # type names only: the service loads when a command runs, not for --help
    from gateway.service import LeaderboardView, RunReport


def plain(value: object | None, empty: str = "-") -> Text:
    """``value`` as Text, shown as written: no markup, control characters (other than newlines and tabs)
    and undecodable bytes as escapes."""
    if value is None or value == "":
        return Text(empty, style="dim")
    text = str(value)
    return Text("".join(c if printable(c) or c in "\n\t" else ascii(c)[1:-1] for c in text))


@dataclass(frozen=True)
class CaseRow:
    """One test or benchmark as the result table shows it (timings in seconds)."""

    spec: str
    passed: bool
    error: str | None = None
    mean_s: float | None = None
    best_s: float | None = None
    runs: int | None = None


@dataclass(frozen=True)
class RunView:
    """What the result table shows of a run, from a local report (``view_of_report``) or from the HTTP
    API's run JSON (``view_of_run``): one table for `gateway submit` and `gateway submit --remote`."""

    run_id: str
    user: str
    file_name: str
    site: str
    partition: str
    gpu_type: str
    job_id: str | None
    state: str
    passed: bool
    score: float | None
    error: str | None
    has_result: bool
    tests: list[CaseRow] = field(default_factory=list)
    benchmarks: list[CaseRow] = field(default_factory=list)
    system: Mapping[str, Any] = field(default_factory=dict)
    secret_passed: bool | None = None
    output_tail: str = ""
    profiles: list[tuple[str, str]] = field(default_factory=list)  # (benchmark spec, profiler table)
    ncu: Mapping[str, Any] | None = None  # the Nsight Compute report: {"url", "size"} or {"error"}
    ncu_saved: str | None = None  # where this command saved it


def view_of_report(report: RunReport) -> RunView:
    result = report.result
    return RunView(
        run_id=report.run_id,
        user=report.user,
        file_name=report.file_name,
        site=report.site,
        partition=report.partition,
        gpu_type=report.gpu_type,
        job_id=report.job_id,
        state=report.state.value,
        passed=report.passed,
        score=report.score,
        error=report.error,
        has_result=result is not None,
        tests=[CaseRow(t.spec, t.passed, t.error) for t in result.tests] if result else [],
        benchmarks=[
            CaseRow(
                b.spec,
                b.passed,
                b.error,
                b.mean_ns * 1e-9 if b.passed else None,
                b.best_ns * 1e-9 if b.passed else None,
                b.runs if b.passed else None,
            )
            for b in (result.benchmarks if result else [])
        ],
        system=result.system if result else {},
        secret_passed=report.secret_passed,
        output_tail=report.output_tail,
        profiles=[(p.spec, p.report) for p in result.profiles] if result else [],
        ncu=_ncu_view(report.run_id, result.ncu if result else None),
    )


def _ncu_view(run_id: str, signed: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if signed is None:
        return None
    if "error" in signed:
        return {"error": str(signed["error"])}
    return {"url": f"/api/runs/{run_id}/profile.ncu-rep", "size": signed.get("size")}


def view_of_run(run: Mapping[str, Any], secret_passed: bool | None = None) -> RunView:
    """A run as the HTTP API sends it (gateway/api/schemas.py ``RunOut``), read leniently: a field a
    server leaves out shows as missing rather than failing the command."""

    def text(key: str) -> str:
        value = run.get(key)
        return "" if value is None else str(value)

    def number(value: object) -> float | None:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def rows(key: str) -> list[CaseRow]:
        items = run.get(key)
        return [
            CaseRow(
                str(item.get("spec", "")),
                item.get("passed") is True,
                None if item.get("error") is None else str(item.get("error")),
                number(item.get("mean_s")),
                number(item.get("best_s")),
                item["runs"] if isinstance(item.get("runs"), int) and number(item.get("mean_s")) else None,
            )
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, Mapping)
        ]

    tests, benchmarks = rows("tests"), rows("benchmarks")
    items = run.get("profile")
    profiles = [
        (str(item.get("spec", "")), str(item.get("report", "")))
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, Mapping)
    ]
    system = run.get("system")
    ncu = run.get("ncu_report")
    return RunView(
        run_id=text("run_id"),
        user=text("user"),
        file_name=text("file_name"),
        site=text("site"),
        partition=text("partition"),
        gpu_type=text("gpu_type"),
        job_id=text("job_id") or None,
        state=text("state") or "UNKNOWN",
        passed=run.get("passed") is True,
        score=number(run.get("score")),
        error=text("error") or None,
        has_result=bool(tests or benchmarks or system),
        tests=tests,
        benchmarks=benchmarks,
        system=system if isinstance(system, Mapping) else {},
        secret_passed=secret_passed,
        profiles=profiles,
        ncu=ncu if isinstance(ncu, Mapping) else None,
    )


def print_report(console: Console, report: RunReport | RunView, saved_ncu: Path | None = None) -> None:
    """A run's result table: each test and benchmark, where it ran, the secret rerun's verdict, the
    verdict with the score (or the error, and the job's last output lines when there is no result);
    profile mode's tables and where its Nsight Compute report is (``saved_ncu``: saved here)."""
    view = report if isinstance(report, RunView) else view_of_report(report)
    if saved_ncu is not None:
        view = replace(view, ncu_saved=str(saved_ncu))
    title = (
        f"{view.file_name} by {view.user} on {view.site}/{view.partition} ({view.gpu_type}), "
        f"job {view.job_id or '-'}, run {view.run_id}"
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
            str(bench.runs) if bench.runs is not None else "-",
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
    print_ncu(console, view)
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


def print_profiles(console: Console, profiles: list[tuple[str, str]]) -> None:
    """Profile mode's tables, each under the benchmark it profiled. The submission's process made them, so
    they go through ``plain`` and are said to be its output; lines are not wrapped (the table is wide)."""
    for spec, report in profiles:
        console.print(
            Text.assemble(
                ("profile of ", "bold"),
                plain(spec),
                (" (torch.profiler, in the submission's process)", "dim"),
            )
        )
        console.print(plain(report.rstrip(), "(empty)"), highlight=False, soft_wrap=True)


def print_ncu(console: Console, view: RunView) -> None:
    """Where the run's Nsight Compute report is: saved here, or on the gateway's API; or why there is none."""
    ncu = view.ncu
    if not ncu:
        return
    if ncu.get("error"):
        console.print(Text.assemble(("no Nsight Compute report: ", "yellow"), plain(ncu["error"])))
        return
    size = ncu.get("size")
    about = "Nsight Compute report"
    if isinstance(size, int):
        about += f" ({size / 2**20:.1f} MiB)" if size >= 2**20 else f" ({size / 1024:.1f} KiB)"
    where = (
        f"saved to {view.ncu_saved}"
        if view.ncu_saved
        else f"download it from the gateway: GET {ncu.get('url')}"
    )
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
