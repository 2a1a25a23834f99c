"""The `gateway` command line: submit kernels, show leaderboards, run the demo, drive the dev stack."""

from __future__ import annotations

import asyncio
import getpass
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from gateway.cli.dev import app as dev_app
from gateway.cli.output import print_leaderboard, print_report
from gateway.cli.render import render as render_command
from gateway.cli.sites import app as sites_app
from gateway.errors import GatewayError, StoreError, UserError
from gateway.service import Gateway, SubmitRequest, as_mode
from gateway.settings import Settings
from gateway.tasks import load_task

app = typer.Typer(
    help="Kernel submission gateway: Slurm sites over SSH, a Postgres leaderboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
leaderboard_app = typer.Typer(help="Create and show leaderboards.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs recorded in the database.", no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")
app.add_typer(sites_app, name="sites")
app.add_typer(dev_app, name="dev")
app.command("render")(render_command)

console = Console()
T = TypeVar("T")


def _run(body: Callable[[Gateway], Awaitable[T]], *, use_database: bool = True) -> T:
    """Open a Gateway, run ``body`` with it, close it; turn gateway errors into a message and exit code."""

    async def main() -> T:
        # SIGTERM cancels like Ctrl-C does, so a killed `gateway submit` cancels its job and records it
        this = asyncio.current_task()
        assert this is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
        gateway = await Gateway.open(Settings(), use_database=use_database)
        try:
            return await body(gateway)
        finally:
            await gateway.close()

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("[yellow]stopped:[/] the run was cancelled and recorded as such")
        raise typer.Exit(130) from None
    except UserError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except StoreError as exc:
        hint = "start it (`make up` for the dev stack), or pass --no-db to `gateway submit` to record nothing"
        console.print(f"[red]error:[/] {exc}\n{hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except GatewayError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@app.callback()
def _configure(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log debug detail")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the submission (Python source)")],
    task: Annotated[Path | None, typer.Option(help="task directory holding task.yml")] = None,
    leaderboard: Annotated[
        str | None, typer.Option(help="leaderboard name (default: the task's name)")
    ] = None,
    site: Annotated[str | None, typer.Option(help="site name from site_configs/ (default: local)")] = None,
    gpu: Annotated[str | None, typer.Option(help="GPU type, e.g. H100")] = None,
    mode: Annotated[str, typer.Option(help="test | benchmark | leaderboard")] = "leaderboard",
    user: Annotated[str | None, typer.Option(help="who submits (default: your login name)")] = None,
    no_db: Annotated[bool, typer.Option("--no-db", help="do not record anything in the database")] = False,
) -> None:
    """Run FILE against a task on a site, print each test and benchmark, and record the run."""
    try:
        run_mode = as_mode(mode)
    except ValueError:
        raise typer.BadParameter("expected test, benchmark or leaderboard", param_hint="--mode") from None
    try:
        code = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        console.print(f"[red]error:[/] {file} is not UTF-8 text")
        raise typer.Exit(2) from None
    try:
        definition = load_task(task) if task is not None else None
    except UserError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    request = SubmitRequest(
        code=code,
        file_name=file.name,
        user=user or getpass.getuser(),
        task=definition,
        leaderboard=leaderboard,
        site=site,
        gpu_type=gpu,
        mode=run_mode,
    )

    async def body(gateway: Gateway) -> bool:
        async def show(run_id: str, message: str) -> None:
            console.print(f"[dim]{run_id[:8]}[/] {message}", highlight=False)

        report = await gateway.submit(request, on_event=show)
        print_report(console, report)
        return report.passed

    if not _run(body, use_database=not no_db):
        raise typer.Exit(1)


@leaderboard_app.command("create")
def leaderboard_create(
    name: str,
    task: Annotated[Path, typer.Option(help="task directory holding task.yml")],
    gpu: Annotated[
        list[str] | None, typer.Option(help="GPU types it ranks (repeat); default: all known")
    ] = None,
) -> None:
    """Create leaderboard NAME for a task (does nothing when it exists)."""
    definition = load_task(task)

    async def body(gateway: Gateway) -> None:
        board = await gateway.create_leaderboard(name, definition, gpu)
        console.print(f"leaderboard {board.name}: task {definition.name}, GPUs {', '.join(board.gpu_types)}")

    _run(body)


@leaderboard_app.command("show")
def leaderboard_show(name: str) -> None:
    """Rank leaderboard NAME: each user's best passing score per GPU type, and recent failures."""

    async def body(gateway: Gateway) -> None:
        print_leaderboard(console, await gateway.leaderboard(name))

    _run(body)


@runs_app.command("resume")
def runs_resume(
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="run ids (default: every unfinished run)")
    ] = None,
    site: Annotated[str | None, typer.Option(help="only the runs of this site")] = None,
) -> None:
    """Finish the runs a stopped gateway left unfinished: follow each one's Slurm job (found by job id, or
    by its name gw-<run id> when the id was never recorded) and submit only runs the site has no job for."""

    async def body(gateway: Gateway) -> bool:
        async def show(run_id: str, message: str) -> None:
            console.print(f"[dim]{run_id[:8]}[/] {message}", highlight=False)

        reports = await gateway.resume(on_event=show, site=site, run_ids=run_ids or None)
        if not reports:
            console.print("no unfinished runs")
        for report in reports:
            print_report(console, report)
        return all(report.passed for report in reports)

    if not _run(body):
        raise typer.Exit(1)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending yoyo migrations to GATEWAY_DATABASE_URL."""
    from gateway.migrate import apply_migrations

    dsn = Settings().database_dsn()
    if dsn is None:
        console.print("[red]error:[/] GATEWAY_DATABASE_URL is not set")
        raise typer.Exit(2)
    try:
        applied = apply_migrations(dsn)
    except GatewayError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"applied {applied} migration(s)")


@db_app.command("rollback")
def db_rollback(
    to: Annotated[
        str | None,
        typer.Option("--to", help="keep this revision, roll back every one after it ('base': all)"),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Roll back the latest migration (or those after --to) with its .rollback.sql; drops their data."""
    from rich.markup import escape

    from gateway.migrate import rollback_migrations

    dsn = Settings().database_dsn()
    if dsn is None:
        console.print("[red]error:[/] GATEWAY_DATABASE_URL is not set")
        raise typer.Exit(2)
    if not yes and not typer.confirm(f"roll back {'the latest migration' if to is None else 'to ' + to}?"):
        raise typer.Exit(1)
    try:
        undone = rollback_migrations(dsn, to)
    except GatewayError as exc:  # the message quotes --to as typed: escaped, never read as markup
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"rolled back {len(undone)} migration(s): {', '.join(undone) or 'none'}", highlight=False)


@app.command()
def demo(
    problems_dir: Annotated[Path, typer.Option(help="folder of example problems")] = Path("problems"),
) -> None:
    """Push the example solutions through the dev sites into the leaderboard and print it."""
    from gateway.cli.demo import run_demo

    if not _run(lambda gateway: run_demo(gateway, problems_dir, console)):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
