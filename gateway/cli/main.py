"""The `gateway` command line: submit kernels, show leaderboards, run the demo, drive the dev stack.

It starts fast (`gateway --help`, and every TAB of shell completion): a module here imports the service,
the database driver, SSH, HTTP clients and the settings inside the command that needs them, never at the
top (tests/unit/test_cli_start.py checks; bench/cli_start.py times it)."""

from __future__ import annotations

import copy
import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from gateway.cli import complete
from gateway.cli.bot import bot as bot_command
from gateway.cli.common import console, err_console, fail, set_verbose, shown_path
from gateway.cli.common import run_gateway as _run
from gateway.cli.dev import app as dev_app
from gateway.cli.fallback import app as fallback_app
from gateway.cli.leaderboards import app as leaderboard_app
from gateway.cli.output import print_report, save_ncu_report
from gateway.cli.problems import app as problems_app
from gateway.cli.remote import login as login_command
from gateway.cli.render import render as render_command
from gateway.cli.runs import app as runs_app
from gateway.cli.serve import serve as serve_command
from gateway.cli.sites import app as sites_app
from gateway.cli.users import app as users_app
from gateway.cli.worker import worker as worker_command
from gateway.core.errors import GatewayError, UserError
from gateway.core.modes import RunMode, as_mode
from gateway.service.runview import view_of_report

if TYPE_CHECKING:  # the service (asyncssh, asyncpg, ...) loads when a command runs, not for --help
    from gateway.service.facade import Gateway

VERBOSE_HELP = "log debug detail"


def _verbose_given(ctx: Any, param: Any, value: bool) -> None:
    if value:
        set_verbose(True)


def _with_verbose(command: Any, option: Any) -> None:
    """Give ``command`` and every command below it ``option`` (-v/--verbose), so that it works after the
    subcommand too."""
    if not any("--verbose" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(option)
    for sub in getattr(command, "commands", {}).values():
        _with_verbose(sub, option)


class _GatewayGroup(TyperGroup):
    """The root command: -v/--verbose goes before or after any subcommand (`gateway submit x.py -v`)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # the root's own option (the callback's `verbose`), copied: below the root it only turns detail on
        root = next(p for p in self.params if "--verbose" in getattr(p, "opts", ()))
        option = copy.copy(root)
        option.expose_value = False
        option.callback = _verbose_given
        for sub in self.commands.values():
            _with_verbose(sub, option)


app = typer.Typer(
    cls=_GatewayGroup,
    help="Kernel submission gateway: Slurm sites over SSH, a Postgres leaderboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")
app.add_typer(problems_app, name="problems")
app.add_typer(runs_app, name="runs")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
app.add_typer(sites_app, name="sites")
app.add_typer(dev_app, name="dev")
app.add_typer(fallback_app, name="fallback")
app.command("render")(render_command)
app.command("worker")(worker_command)
app.command("bot")(bot_command)
app.command("serve")(serve_command)
app.command("login")(login_command)

STOPPED_RUN = "stopped: the run was cancelled and recorded as such"


def _print_version(asked: bool) -> None:
    if asked:
        import importlib.metadata

        typer.echo(f"gateway {importlib.metadata.version('kernel-gateway')}")
        raise typer.Exit()


@app.callback()
def _configure(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    set_verbose(verbose)  # worker, serve and bot configure the logs again with their settings


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the submission (Python source)")],
    task: Annotated[
        str | None,
        typer.Option(
            metavar="NAME|DIR",
            help="a task's name in the tasks folder (GATEWAY_TASKS_DIR), or a folder holding task.yml",
            autocompletion=complete.task_names,
        ),
    ] = None,
    leaderboard: Annotated[
        str | None,
        typer.Option(help="leaderboard name (default: the task's name)", autocompletion=complete.board_names),
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(
            help="site name from the sites folder (default: local)", autocompletion=complete.site_names
        ),
    ] = None,
    gpu: Annotated[
        str | None, typer.Option(help="GPU type, e.g. H100", autocompletion=complete.gpu_types)
    ] = None,
    mode: Annotated[
        RunMode, typer.Option(case_sensitive=False, help="what the run does (any case)")
    ] = RunMode.LEADERBOARD,
    user: Annotated[str | None, typer.Option(help="who submits (default: your login name)")] = None,
    no_db: Annotated[bool, typer.Option("--no-db", help="do not record anything in the database")] = False,
    remote: Annotated[
        str | None,
        typer.Option(help="a gateway's URL: submit over its HTTP API as the user `gateway login URL` saved"),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="no live lines: print the finished submission as the API's JSON"),
    ] = False,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="queue it, print its ids and return; follow with `gateway runs watch`"),
    ] = False,
) -> None:
    """Run FILE against a task on a site, print each test and benchmark, and record the run.

    With --remote URL the file goes to that gateway's HTTP API (with --leaderboard, and --gpu when the
    leaderboard ranks several GPU types); its runs are followed live and shown the same way. Ctrl-C
    cancels the run (on the remote gateway too) and says so. Exit code 0 only when every run passed,
    the secret rerun included.

    `#!POPCORN leaderboard NAME` and `#!POPCORN gpu TYPE` lines at the top of FILE set the leaderboard
    and GPU type (as popcorn-cli reads them); --leaderboard and --gpu win over them. With --detach the
    submission is queued and its ids printed at once: a `gateway worker` runs it (the remote gateway's,
    with --remote), and `gateway runs watch RUN` follows it."""
    run_mode = as_mode(mode.value)
    out = err_console if as_json else console
    if detach and as_json:
        fail("--detach prints the ids and returns: it cannot go with --json", to=out)
    code = read_source(file, out, checked_here=remote is None)
    leaderboard, gpu = with_directives(file, code, leaderboard, gpu, out)
    if remote is not None:
        given = {"--task": task is not None, "--no-db": no_db, "--user": user is not None}
        if wrong := [option for option, used in given.items() if used]:
            fail(
                f"{' and '.join(wrong)} cannot be used with --remote: the remote gateway has the task and "
                "the database, and your token says who you are",
                to=out,
            )
        if leaderboard is None:
            fail(
                "--remote needs --leaderboard NAME, or a `#!POPCORN leaderboard NAME` line at the top of the "
                "file (`gateway leaderboard list --remote URL` lists them)",
                to=out,
            )
        from gateway.cli.remote import submit_remote

        submit_remote(
            remote,
            file.name,
            code,
            leaderboard,
            gpu=gpu,
            mode=run_mode,
            site=site,
            as_json=as_json,
            detach=detach,
        )
        return
    if detach and no_db:
        fail("--detach queues the run in the database for a worker: it cannot go with --no-db", to=out)
    if detach and site in (None, "local") and gpu is None:
        fail(
            "--detach queues the run for a `gateway worker` on a Slurm site: give --gpu TYPE (or a "
            "`#!POPCORN gpu` line); a run on this machine is never queued, it runs in this command "
            "(leave out --detach)",
            to=out,
        )
    if as_json and no_db:
        fail("--json prints the submission as the database recorded it: it cannot go with --no-db", to=out)
    if as_json:
        try:
            import gateway.http.api.schemas  # noqa: F401  (the API's document; the api extra brings FastAPI)
        except ImportError:
            fail("a local --json needs the api extra: pip install 'kernel-gateway[api]'", to=out)
    from gateway.config.settings import Settings
    from gateway.config.tasks import find_task_dir, load_task
    from gateway.service.model import SubmitRequest

    try:
        definition = load_task(find_task_dir(task, Settings().tasks_dir)) if task is not None else None
    except UserError as exc:
        fail(str(exc), to=out)
    request = SubmitRequest(
        code=code,
        file_name=file.name,
        user=user or getpass.getuser(),
        task=definition,
        leaderboard=leaderboard,
        site=site,
        gpu_type=gpu,
        mode=run_mode,
        admin=True,  # the operator: this machine holds the database's credentials
    )

    async def body(gateway: Gateway) -> bool:
        from gateway.cli.follow import StatusBoard, live_status

        if detach:
            from gateway.cli.follow import print_detached

            print_detached(console, await gateway.enqueue(request))
            return True
        if as_json and gateway.store is None:
            raise UserError(
                "--json prints the submission as the database recorded it: set GATEWAY_DATABASE_URL"
            )
        async with live_status(console, StatusBoard(), quiet=as_json) as live:

            async def show(run_id: str, message: str) -> None:
                await live(run_id, "state", message, None)

            report = await gateway.submit(request, on_event=None if as_json else show)
        if as_json:
            await print_submission_json(gateway, report.run_id)
        else:
            print_report(console, view_of_report(report), save_ncu_report(report, file))
        return report.passed and report.secret_passed is not False

    if not _run(body, use_database=not no_db, interrupted=STOPPED_RUN, to=out):
        raise typer.Exit(1)


def read_source(file: Path, out: Console, *, checked_here: bool) -> str:
    """A submission's text, through the intake every front end uses (gateway/service/intake.py); exit 2 with
    its message, naming the file, otherwise. ``checked_here``: within this gateway's size limit (a remote
    gateway checks its own)."""
    from gateway.service.intake import take_upload

    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {shown_path(file)}: {exc.strerror}", to=out)
    max_bytes = None
    if checked_here:
        from gateway.config.settings import Settings

        max_bytes = Settings().max_submission_bytes
    try:
        return take_upload(data, file.name, max_bytes=max_bytes).code
    except UserError as exc:
        fail(str(exc), to=out)


def with_directives(
    file: Path, code: str, leaderboard: str | None, gpu: str | None, out: Console
) -> tuple[str | None, str | None]:
    """The leaderboard and GPU type: the flags, else the file's `#!POPCORN` directives."""
    from gateway.client.directives import parse_directives

    try:
        directives = parse_directives(code, shown_path(file))
    except UserError as exc:
        fail(str(exc), to=out)
    return leaderboard or directives.leaderboard, gpu or directives.gpu


async def print_submission_json(gateway: Gateway, run_id: str) -> None:
    """The submission of a run as `GET /api/submissions/{id}` answers it (gateway/http/api/schemas.py)."""
    from gateway.http.api.schemas import submission_out
    from gateway.service.facade import OPERATOR

    record = await gateway.run(run_id, caller=OPERATOR)
    runs = await gateway.submission_runs(record.submission_id, caller=OPERATOR)
    print(submission_out(runs).model_dump_json(indent=2))


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending yoyo migrations to GATEWAY_DATABASE_URL."""
    from gateway.config.settings import Settings
    from gateway.store.migrate import apply_migrations

    dsn = Settings().database_dsn()
    if dsn is None:
        fail("GATEWAY_DATABASE_URL is not set")
    try:
        applied = apply_migrations(dsn)
    except GatewayError as exc:
        fail(str(exc), 1)
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

    from gateway.config.settings import Settings
    from gateway.store.migrate import rollback_migrations

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
    problems_dir: Annotated[
        Path | None,
        typer.Option(help="folder of example problems (default: the gateway's own, problems/ in a checkout)"),
    ] = None,
) -> None:
    """Push the example solutions through the dev sites into the leaderboard and print it."""
    from gateway.cli.demo import run_demo
    from gateway.core.resources import problems_dir as shipped_problems

    problems_dir = problems_dir or shipped_problems()

    if not _run(lambda gateway: run_demo(gateway, problems_dir, console)):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
