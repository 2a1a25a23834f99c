"""`gateway runs ...`: list, show and cancel the runs recorded in the database; resume unfinished ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from gateway.authority import OPERATOR
from gateway.cli.common import EXIT_FAILED, console, run_gateway
from gateway.cli.output import plain, print_report
from gateway.cli.tables import print_run, print_runs

if TYPE_CHECKING:  # the service (asyncssh, asyncpg, ...) loads when a command runs, not for --help
    from gateway.service import Gateway

app = typer.Typer(help="Runs recorded in the database: list, show, cancel, resume.", no_args_is_help=True)
RUN_ARG = typer.Argument(help="a run id, or its first characters as tables show them (e.g. 3f2a9c1e)")


@app.command("list")
def list_(
    leaderboard: Annotated[str | None, typer.Option(help="only this leaderboard's runs")] = None,
    user: Annotated[str | None, typer.Option(help="only this user's runs")] = None,
    unfinished: Annotated[bool, typer.Option("--unfinished", help="only runs not finished yet")] = False,
    site: Annotated[str | None, typer.Option(help="only runs routed to this site")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many, newest first")] = 50,
) -> None:
    """List runs, newest first, with who, where, state and score.

    Each row: the run id's first characters (for `runs show`), when it was queued, user, leaderboard,
    file, mode, GPU type, site/partition, Slurm job, state and score. A leaderboard submission has a
    public run and a secret rerun."""

    async def body(gateway: Gateway) -> None:
        runs = await gateway.runs(
            leaderboard=leaderboard, user=user, unfinished=unfinished, site=site, limit=limit, caller=OPERATOR
        )
        print_runs(console, runs, f"runs (newest first, at most {limit})")

    run_gateway(body)


@app.command("show")
def show(run_id: Annotated[str, RUN_ARG]) -> None:
    """Show everything about one run, and its events.

    State, site, partition, Slurm job and attempt, worker and claims, times, score, error, each test
    and benchmark, and every event recorded for it."""

    async def body(gateway: Gateway) -> None:
        from gateway.service import report_of

        record = await gateway.run(run_id, caller=OPERATOR)
        print_run(
            console, record, report_of(record), await gateway.run_events(record.run_id, caller=OPERATOR)
        )

    run_gateway(body)


@app.command("cancel")
def cancel(run_id: Annotated[str, RUN_ARG]) -> None:
    """Cancel a run.

    A run no worker has started ends CANCELLED at once; a running one is cancelled by the worker that
    holds it, which cancels its Slurm job. Exit code 1 if it had already finished otherwise."""

    async def body(gateway: Gateway) -> bool:
        console.print(plain(await gateway.cancel_run(run_id, caller=OPERATOR)), highlight=False)
        after = await gateway.run(run_id, caller=OPERATOR)
        return after.finished_at is None or after.state == "CANCELLED"  # pending, or done

    if not run_gateway(body):
        raise typer.Exit(EXIT_FAILED)


@app.command("resume")
def resume(
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="run ids (default: every unfinished run)")
    ] = None,
    site: Annotated[str | None, typer.Option(help="only the runs of this site")] = None,
) -> None:
    """Finish the runs a stopped gateway left unfinished.

    Follows each one's Slurm job (found by job id, or by its name gw-<run id> when the id was never
    recorded) and submits only runs the site has no job for."""

    async def body(gateway: Gateway) -> bool:
        async def show(run_id: str, message: str) -> None:
            console.print(Text.assemble((run_id[:8], "dim"), " ", plain(message)), highlight=False)

        reports = await gateway.resume(on_event=show, site=site, run_ids=run_ids or None)
        if not reports:
            console.print("no unfinished runs")
        for report in reports:
            print_report(console, report)
        return all(report.passed for report in reports)

    if not run_gateway(body, interrupted="stopped: the runs were cancelled and recorded as such"):
        raise typer.Exit(EXIT_FAILED)
