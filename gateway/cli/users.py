"""`gateway users ban|unban`: stop a user from submitting, or let them submit again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from gateway.cli.common import console, run_gateway
from gateway.cli.output import plain
from gateway.service import Gateway

app = typer.Typer(help="Users: ban and unban submitters.", no_args_is_help=True)
NAME_ARG = typer.Argument(help="the user's name as their submissions record it (--user, Discord name)")


def _set(name: str, banned: bool) -> None:
    async def body(gateway: Gateway) -> bool:
        return await gateway.set_banned(name, banned)

    changed = run_gateway(body)
    state = "banned from submitting" if banned else "allowed to submit"
    console.print(
        Text.assemble("user ", plain(name), f" is {'now' if changed else 'already'} {state}"), highlight=False
    )


@app.command("ban")
def ban(name: Annotated[str, NAME_ARG]) -> None:
    """Ban user NAME from submitting.

    Their new submissions are refused; runs already queued go on. A name not seen yet is recorded, so
    a ban can come before the first submission."""
    _set(name, True)


@app.command("unban")
def unban(name: Annotated[str, NAME_ARG]) -> None:
    """Lift the ban on user NAME."""
    _set(name, False)
