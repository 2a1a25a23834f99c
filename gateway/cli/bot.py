"""`gateway bot`: start the Discord bot (token from GATEWAY_DISCORD_TOKEN or ./.env)."""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from gateway.cli.logopts import LogFormatOption, service_settings

console = Console(stderr=True)
log = logging.getLogger("bot")


def bot(log_format: LogFormatOption = None) -> None:
    """Run the Discord bot: /leaderboard for competitors, /admin for admins.

    It needs the database (runs are executed by `gateway worker` processes, anywhere), a bot token
    (GATEWAY_DISCORD_TOKEN), the servers it serves (GATEWAY_DISCORD_GUILD_IDS: its commands are synced
    there only) and the role ids of admins there (GATEWAY_DISCORD_ADMIN_ROLE_IDS). See docs/bot.md.
    Its log (discord.py's included) goes to stderr at GATEWAY_LOG_LEVEL, as --log-format says."""
    import asyncio
    import signal

    from pydantic import ValidationError

    from gateway.core.errors import GatewayError
    from gateway.service.facade import Gateway

    gateway_settings = service_settings(log_format)
    try:
        import aiohttp
        import discord

        from bot.client import GatewayBot
        from bot.settings import BotSettings
    except ImportError as exc:
        console.print(f"[red]error:[/] the bot needs discord.py: pip install '.[bot]' ({exc})")
        raise typer.Exit(2) from None
    try:
        settings = BotSettings()
    except ValidationError as exc:
        for problem in exc.errors():
            console.print(f"[red]error:[/] {escape(str(problem.get('msg', problem)))}")
        raise typer.Exit(2) from None
    if settings.token is None:
        console.print(
            "[red]error:[/] set GATEWAY_DISCORD_TOKEN (in the environment or ./.env) to the bot's token"
        )
        raise typer.Exit(2)
    token = settings.token.get_secret_value()
    if not settings.guild_ids:
        console.print(
            "[red]error:[/] set GATEWAY_DISCORD_GUILD_IDS to the id of each server the bot serves "
            "(Server Settings > Widget > Server ID): its commands are synced there only"
        )
        raise typer.Exit(2)

    async def main() -> int:
        gateway = await Gateway.open(gateway_settings)
        if gateway.store is None:
            console.print("[red]error:[/] the bot needs the database: set GATEWAY_DATABASE_URL")
            await gateway.close()
            return 2
        client = GatewayBot(gateway, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(client.close()))
        try:
            async with client:
                await client.start(token)
        except discord.LoginFailure:
            console.print("[red]error:[/] Discord refused the token: check GATEWAY_DISCORD_TOKEN")
            return 2
        except (aiohttp.ClientError, OSError) as exc:  # no route to Discord: say so, no traceback
            console.print(Text.assemble(("error:", "red"), f" cannot reach Discord: {exc}"), highlight=False)
            return 1
        finally:
            await gateway.close()
        return 0

    try:
        code = asyncio.run(main())
    except GatewayError as exc:  # the log says it, as it says the rest
        log.error("bot stopped: %s", exc)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
