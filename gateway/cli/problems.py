"""`gateway problems sync CHECKOUT`: the leaderboards of a reference-kernels checkout's competitions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from gateway.cli.common import console, run_gateway
from gateway.cli.output import plain
from gateway.service.authority import OPERATOR

if TYPE_CHECKING:  # the service (asyncssh, asyncpg, ...) loads when a command runs, not for --help
    from gateway.service.competition_sync import SyncReport
    from gateway.service.facade import Gateway

app = typer.Typer(help="Competitions from a reference-kernels checkout.", no_args_is_help=True)
_STYLES = {"created": "green", "updated": "yellow", "unchanged": "dim"}


@app.command("sync")
def sync(
    checkout: Annotated[
        Path, typer.Argument(help="a reference-kernels checkout: the folder holding problems/<name>.yaml")
    ],
    competition: Annotated[
        str | None,
        typer.Option(help="only this competition file (its name in problems/, with or without .yaml)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would change; write nothing")] = False,
) -> None:
    """Create or update a leaderboard for each problem of the checkout's competition files.

    Each board gets the problem's task (files, tests, templates), its deadline (else the competition's),
    the GPU types the problem lists and the task's description. Running it again on the same checkout
    changes nothing. Nothing outside the checkout is read."""

    async def body(gateway: Gateway) -> None:
        report = await gateway.competition_sync.sync_checkout(
            checkout, competition=competition, dry_run=dry_run, caller=OPERATOR
        )
        print_sync_report(console, report)

    run_gateway(body)


def print_sync_report(out: Console, report: SyncReport) -> None:
    """The competitions read, one line per leaderboard (with its notes), and the outcome."""
    for name, file in report.competitions:
        out.print(Text.assemble("competition ", plain(name), f" ({file})"), highlight=False, soft_wrap=True)
    for change in report.changes:
        line = Text.assemble("  ", plain(change.summary(report.dry_run)), style=_STYLES[change.kind])
        out.print(line, highlight=False, soft_wrap=True)
        for note in change.notes:
            out.print(Text.assemble("    note: ", plain(note)), highlight=False, soft_wrap=True)
    out.print(plain(report.headline()), highlight=False, soft_wrap=True)
