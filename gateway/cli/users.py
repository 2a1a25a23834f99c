"""`gateway users ban|unban|token|revoke|admin|link`: stop a user from submitting or let them again; give
them an API token for the HTTP API and remote CLI, or revoke it; give an account an admin's rights; link
an account from before Discord ids were kept to its Discord user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from gateway.cli.common import console, run_gateway
from gateway.cli.output import plain
from gateway.service.authority import OPERATOR

if TYPE_CHECKING:  # the service (asyncssh, asyncpg, ...) loads when a command runs, not for --help
    from gateway.service.facade import Gateway

app = typer.Typer(help="Users: ban and unban submitters; make and revoke API tokens.", no_args_is_help=True)
NAME_ARG = typer.Argument(
    help="the account: the name a CLI user submits as (--user), or discord:<user id> for a Discord user"
)


def _set(name: str, banned: bool) -> None:
    async def body(gateway: Gateway) -> bool:
        return await gateway.boards.set_banned(name, banned, caller=OPERATOR)

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
        return await gateway.accounts.create_token(name, caller=OPERATOR)

    made = run_gateway(body)
    console.print(Text.assemble("API token for ", plain(name), " (shown once; it replaces any old one):"))
    print(made)  # bare, so `gateway users token alice | tail -1` gives just the token


@app.command("revoke")
def revoke(name: Annotated[str, NAME_ARG]) -> None:
    """Revoke user NAME's API token: the API refuses it from now on."""

    async def body(gateway: Gateway) -> bool:
        return await gateway.accounts.revoke_token(name, caller=OPERATOR)

    revoked = run_gateway(body)
    what = "revoked" if revoked else "had no API token"
    console.print(Text.assemble("user ", plain(name), f" {what}"), highlight=False)


@app.command("admin")
def admin(
    name: Annotated[str, NAME_ARG],
    revoke: Annotated[bool, typer.Option("--revoke", help="take the admin's rights away")] = False,
) -> None:
    """Give account NAME an admin's rights (or take them away with --revoke).

    Its API token then may name a site, see hidden leaderboards and use the admin endpoints. Discord
    admins are configured in the bot's settings instead (guild ids and role ids)."""

    async def body(gateway: Gateway) -> bool:
        return await gateway.accounts.set_admin(name, not revoke, caller=OPERATOR)

    changed = run_gateway(body)
    state = "not an admin" if revoke else "an admin"
    console.print(
        Text.assemble("user ", plain(name), f" is {'now' if changed else 'already'} {state}"), highlight=False
    )


@app.command("link")
def link(
    name: Annotated[str, typer.Argument(help="an account from before Discord ids were kept")],
    discord_id: Annotated[int, typer.Argument(help="the Discord user id it belongs to (Copy User ID)")],
) -> None:
    """Make account NAME, recorded by a Discord username before the gateway kept Discord ids, the
    account of Discord user DISCORD_ID: its history, ban and token become theirs.

    The gateway cannot tell which Discord user an old name meant (names are reused), so an admin says."""

    async def body(gateway: Gateway) -> str:
        return await gateway.accounts.link_discord(name, discord_id, caller=OPERATOR)

    console.print(plain(run_gateway(body)), highlight=False)
