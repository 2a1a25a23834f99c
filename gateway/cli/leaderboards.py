"""`gateway leaderboard ...`: create, list, show and delete leaderboards; set rate limits and deadlines;
export a ranking and reveal code after the end (gateway/cli/exports.py)."""

from __future__ import annotations

import getpass
import re
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from gateway.cli.common import EXIT_USAGE, console, err_console, fail, run_gateway, warn
from gateway.cli.exports import export, reveal
from gateway.cli.output import plain, print_leaderboard
from gateway.cli.tables import (
    deadline_text,
    limit_text,
    print_board_header,
    print_leaderboards,
    unfinished_text,
)
from gateway.core import formatting
from gateway.core.errors import UserError
from gateway.core.formatting import DEADLINE_HELP
from gateway.core.modes import RunMode, as_mode
from gateway.service.authority import OPERATOR

if TYPE_CHECKING:  # the service (asyncssh, asyncpg, ...) loads when a command runs, not for --help
    from gateway.service.facade import Gateway

app = typer.Typer(
    help="Create, list, show, export and delete leaderboards; set their rate limits, deadlines and whether "
    "their code is revealed after the end.",
    no_args_is_help=True,
)
UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
NAME = Annotated[str, typer.Argument(help="the leaderboard's name", show_default=False)]
DURATION = re.compile(r"(?:\s*\d+\s*(?:s|m|min|h|d|w)?)+\s*")


def parse_deadline(text: str) -> datetime:
    try:
        return formatting.parse_deadline(text)
    except UserError as exc:
        fail(str(exc))


def parse_duration(text: str) -> int:
    """Seconds in '90', '90s', '30min', '2h', '1h30m', '7d', '2w'."""
    if not DURATION.fullmatch(text.lower()):
        fail(f"{text!r}: give a duration such as 30s, 10min, 1h, 1h30m, 1d or 1w")
    seconds = sum(
        int(n) * UNITS[unit or "s"] for n, unit in re.findall(r"(\d+)\s*(min|s|m|h|d|w)?", text.lower())
    )
    if seconds <= 0:
        fail("the window must be at least one second")
    return seconds


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="the leaderboard's name: one line, at most 200 characters")],
    task: Annotated[
        str,
        typer.Option(
            metavar="NAME|DIR",
            help="a task's name in the tasks folder (GATEWAY_TASKS_DIR), or a folder holding task.yml "
            "(reference-kernels format)",
        ),
    ],
    gpu: Annotated[
        list[str] | None, typer.Option(help="a GPU type it ranks (repeat the option); default: every known")
    ] = None,
    deadline: Annotated[
        str | None, typer.Option(help=f"when it closes to submissions: {DEADLINE_HELP}")
    ] = None,
    hidden: Annotated[
        bool, typer.Option("--hidden", help="leave it out of public listings (`list --all` shows it)")
    ] = False,
    description: Annotated[
        str | None, typer.Option(help="what it is about (default: the task's description)")
    ] = None,
) -> None:
    """Create leaderboard NAME for the task in --task.

    Refused if a leaderboard of that name exists (change it with `limit` and `deadline`)."""
    closes = parse_deadline(deadline) if deadline is not None else None

    async def body(gateway: Gateway) -> None:
        from gateway.config.tasks import find_task_dir, load_task

        definition = load_task(find_task_dir(task, gateway.settings.tasks_dir))
        board = await gateway.boards.create_leaderboard(
            name,
            definition,
            gpu,
            deadline=closes,
            visibility="hidden" if hidden else "public",
            creator=getpass.getuser(),
            description=description,
            exist_ok=False,
            caller=OPERATOR,
        )
        console.print(
            Text.assemble(
                "created leaderboard ",
                plain(board.name),
                f" ({board.visibility}): task {definition.name}, ranked by {board.ranking_by}, GPU types ",
                plain(", ".join(board.gpu_types)),
                ", deadline ",
                deadline_text(board.deadline),
            ),
            highlight=False,
            soft_wrap=True,
        )

    run_gateway(body)


REMOTE = typer.Option(
    "--remote", help="a gateway's URL: read its HTTP API as the user `gateway login URL` saved"
)
JSON = typer.Option("--json", help="print the HTTP API's JSON instead of a table")


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="hidden leaderboards too")] = False,
    remote: Annotated[str | None, REMOTE] = None,
    as_json: Annotated[bool, JSON] = False,
) -> None:
    """List leaderboards: GPU types, deadline (open or closed), submissions and runs.

    With --remote URL: the leaderboards that gateway shows your token (GET /api/leaderboards)."""
    from gateway.cli.runs import needs_api_extra, print_json, remote_read

    if remote is not None:
        from gateway.cli.api_json import summary_of

        boards = remote_read(remote, lambda gateway: gateway.leaderboards())
        listed = [board for board in boards if all_ or board.get("visibility", "public") == "public"]
        if as_json:
            print_json(listed)
        else:
            print_leaderboards(console, [summary_of(board) for board in listed], show_hidden=all_)
        return
    if as_json:
        needs_api_extra()

    async def body(gateway: Gateway) -> None:
        boards = await gateway.boards.leaderboards(caller=OPERATOR)
        shown = [board for board in boards if all_ or board.visibility == "public"]
        if as_json:
            from gateway.http.api.schemas import summary_out

            print_json([summary_out(board).model_dump(mode="json") for board in shown])
        else:
            print_leaderboards(console, shown, show_hidden=all_)

    run_gateway(body, to=err_console if as_json else None)


@app.command("show")
def show(
    name: NAME,
    gpu: Annotated[str | None, typer.Option(help="only this GPU type's ranking")] = None,
    top: Annotated[int, typer.Option(min=1, max=10_000, help="how many places per GPU type")] = 100,
    remote: Annotated[str | None, REMOTE] = None,
    as_json: Annotated[bool, JSON] = False,
) -> None:
    """Rank leaderboard NAME per GPU type, and list recent failed runs.

    Each user's best passing score per GPU type, with its rank and when it was submitted (a leaderboard
    run counts once its secret rerun passed too); then each user's latest failed runs. With --remote
    URL: that gateway's ranking (GET /api/leaderboards/NAME/ranking). --json prints the ranking as
    that endpoint answers it."""
    from gateway.cli.runs import needs_api_extra, print_json, remote_read

    if remote is not None:
        from gateway.cli.api_json import view_of_api
        from gateway.client.remote import RemoteGateway

        async def read(gateway: RemoteGateway) -> tuple[dict[str, Any], list[Any], list[Any]]:
            board = await gateway.leaderboard(name)
            ranking = await gateway.ranking(name, gpu, top)
            recent = [] if as_json else await gateway.recent_runs(name)
            return board, ranking, recent

        board, ranking, recent = remote_read(remote, read)
        if as_json:
            print_json(ranking)
            return
        console.print(
            Text.assemble("deadline: ", deadline_text(view_of_api(board, [], []).board.deadline)),
            highlight=False,
        )
        print_leaderboard(console, view_of_api(board, ranking, recent))
        return
    if as_json:
        needs_api_extra()

    async def body(gateway: Gateway) -> None:
        view = await gateway.boards.leaderboard(name, top=top, gpu=gpu, caller=OPERATOR)
        if as_json:
            from gateway.http.api.schemas import RankingOut, ranked_out

            print_json(
                [
                    RankingOut(
                        leaderboard=view.board.name,
                        gpu_type=gpu_type,
                        ranking_by=view.board.ranking_by,
                        entries=[ranked_out(entry) for entry in entries],
                    ).model_dump(mode="json")
                    for gpu_type, entries in view.ranking.items()
                ]
            )
            return
        print_board_header(console, view, gateway.settings.max_unfinished_runs_per_user)
        print_leaderboard(console, view)

    run_gateway(body, to=err_console if as_json else None)


@app.command("delete")
def delete(
    name: NAME,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="delete its submissions and runs too")] = False,
) -> None:
    """Delete leaderboard NAME with all its submissions and runs.

    This is for good. A leaderboard with submissions or runs is deleted only with --yes, or when you
    confirm at the prompt (on a terminal)."""

    async def count(gateway: Gateway) -> tuple[int, int, int]:
        summary = await gateway.boards.leaderboard_summary(name, caller=OPERATOR)
        unfinished = await gateway.runs(leaderboard=name, unfinished=True, limit=10_000, caller=OPERATOR)
        return summary.submissions, summary.runs, sum(1 for run in unfinished if run.job_id)

    submissions, runs, on_sites = run_gateway(count)
    if on_sites:
        warn(
            f"{on_sites} of its runs have a job on a site, which deleting does not cancel: "
            "`gateway runs cancel` them first to free the GPUs"
        )
    if (submissions or runs) and not yes:
        what = f"{submissions} submission(s) and {runs} run(s)"
        if not sys.stdin.isatty():
            fail(f"leaderboard {name!r} has {what}; give --yes to delete them with it")
        console.print(Text.assemble("leaderboard ", plain(name), f" has {what}."), highlight=False)
        if not typer.confirm("Delete it with all of them?", default=False):
            console.print("nothing deleted")
            raise typer.Exit(1)

    async def body(gateway: Gateway) -> tuple[int, int]:
        return await gateway.boards.delete_leaderboard(name, caller=OPERATOR)

    submissions, runs = run_gateway(body)
    console.print(
        Text.assemble(
            "deleted leaderboard ", plain(name), f" with {submissions} submission(s) and {runs} run(s)"
        ),
        highlight=False,
    )


@app.command("limit")
def limit(
    name: NAME,
    mode: Annotated[
        RunMode, typer.Option(case_sensitive=False, help="which submissions it counts (any case)")
    ] = RunMode.LEADERBOARD,
    max_: Annotated[int | None, typer.Option("--max", min=1, help="submissions allowed per window")] = None,
    per: Annotated[str | None, typer.Option(help="the window: 30s, 10min, 1h, 1h30m, 1d, 1w")] = None,
    off: Annotated[bool, typer.Option("--off", help="remove the limit of this mode")] = False,
    unfinished: Annotated[
        str | None,
        typer.Option(
            metavar="N|default",
            help="cap each user's unfinished runs (queued or running, every leaderboard together) when they "
            "submit here: a number from 2, or 'default' for the gateway's setting",
        ),
    ] = None,
) -> None:
    """Limit how often each user may submit to leaderboard NAME, or show its limits.

    At most --max submissions of --mode per --per window for each user; a refused submission says when
    to try again. --off removes the mode's limit. --unfinished N refuses a submission that would leave
    the user more than N unfinished runs (--unfinished default: the gateway's
    GATEWAY_MAX_UNFINISHED_RUNS_PER_USER). Without options, show the limits in force."""
    run_mode = as_mode(mode.value)
    if off and (max_ is not None or per is not None):
        fail("give either --off, or --max and --per")
    if (max_ is None) != (per is None):
        fail("give both --max N and --per DURATION (e.g. --max 5 --per 1h)")
    window = parse_duration(per) if per is not None else None
    cap: int | None = None
    if unfinished is not None and unfinished.strip().lower() != "default":
        try:
            cap = int(unfinished)
        except ValueError:
            fail(f"--unfinished {unfinished!r}: give a number of runs (e.g. 10) or 'default'")

    async def body(gateway: Gateway) -> None:
        default_cap = gateway.settings.max_unfinished_runs_per_user
        if unfinished is not None:
            board = await gateway.boards.set_unfinished_cap(name, cap, caller=OPERATOR)
            done = unfinished_text(board.max_unfinished_per_user, default_cap)
            console.print(Text.assemble(plain(name), f": {done}"), highlight=False)
        if off or max_ is not None:
            now = await gateway.boards.set_rate_limit(
                name, run_mode, None if off else max_, window, caller=OPERATOR
            )
            done = limit_text(now) if now else f"no limit on {run_mode} submissions"
            console.print(Text.assemble(plain(name), f": {done}"), highlight=False)
        if unfinished is not None or off or max_ is not None:
            return
        limits = await gateway.boards.rate_limits(name, caller=OPERATOR)
        shown = "; ".join(limit_text(limit) for limit in limits) or "no rate limits"
        board = await gateway.boards.get_leaderboard(name, caller=OPERATOR)
        shown += "; " + unfinished_text(board.max_unfinished_per_user, default_cap)
        console.print(Text.assemble(plain(name), f": {shown}"), highlight=False)

    run_gateway(body)


@app.command("deadline")
def deadline(
    name: NAME,
    when: Annotated[str | None, typer.Argument(help=f"when it closes: {DEADLINE_HELP}")] = None,
    none: Annotated[bool, typer.Option("--none", help="no deadline: open for good")] = False,
) -> None:
    """Set when leaderboard NAME closes to submissions, or --none.

    A time in the past closes it at once; submissions after the deadline are refused."""
    if (when is None) == (not none):
        fail("give a deadline (e.g. 2026-12-31T23:59Z) or --none", EXIT_USAGE)
    closes = parse_deadline(when) if when is not None else None

    async def body(gateway: Gateway) -> None:
        board = await gateway.boards.set_deadline(name, closes, caller=OPERATOR)
        console.print(
            Text.assemble("leaderboard ", plain(board.name), " deadline: ", deadline_text(board.deadline)),
            highlight=False,
        )

    run_gateway(body)


app.command("export")(export)
app.command("reveal")(reveal)
