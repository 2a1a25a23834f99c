"""`gateway users ban|unban|token|revoke`: stop a user from submitting or let them again; give them an
API token for the HTTP API and remote CLI, or revoke it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from gateway.cli.common import console, run_gateway
from gateway.cli.output import plain
from gateway.service import Gateway

app = typer.Typer(help="Users: ban and unban submitters; make and revoke API tokens.", no_args_is_help=True)
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


@app.command("token")
def token(name: Annotated[str, NAME_ARG]) -> None:
    """Make an API token for user NAME (recorded if new), replacing the one they had.

    The token is printed once, on its own line, and only its SHA-256 hash is kept: hand it to the user,
    who runs `gateway login URL` with it."""

    async def body(gateway: Gateway) -> str:
        return await gateway.create_token(name)

    made = run_gateway(body)
    console.print(Text.assemble("API token for ", plain(name), " (shown once; it replaces any old one):"))
    print(made)  # bare, so `gateway users token alice | tail -1` gives just the token


@app.command("revoke")
def revoke(name: Annotated[str, NAME_ARG]) -> None:
    """Revoke user NAME's API token: the API refuses it from now on."""

    async def body(gateway: Gateway) -> bool:
        return await gateway.revoke_token(name)

    revoked = run_gateway(body)
    what = "revoked" if revoked else "had no API token"
    console.print(Text.assemble("user ", plain(name), f" {what}"), highlight=False)
