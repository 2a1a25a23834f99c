"""What every `gateway` command shares: one console, errors as plain text, and a Gateway opened around
the command's coroutine with gateway errors turned into a message and an exit code.

Exit codes: 0 done; 1 a run failed, or the database or a site failed us; 2 bad input (the message says
what); 3 refused by policy (banned, leaderboard closed, rate limited, the named site drained); 130
interrupted."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from gateway.core.errors import GatewayError, RefusedError, StoreError, UserError

if TYPE_CHECKING:  # the service (asyncssh, asyncpg, ...) loads when a command runs, not for --help
    from gateway.service.facade import Gateway

console = Console()
err_console = Console(stderr=True)  # errors of a command whose stdout is for a program (--json)
T = TypeVar("T")
EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_INTERRUPTED = 1, 2, 3, 130
NO_DATABASE_HINT = (
    "start it (`make up` for the dev stack), or pass --no-db to `gateway submit` to record nothing"
)


class _NoDatabase(GatewayError):
    """The database could not be reached when the command started."""


def error(message: str, *, prefix: str = "error:", to: Console | None = None) -> None:
    """Print an error as written: messages quote user-chosen names, which must never be read as markup."""
    (to or console).print(Text.assemble((prefix, "red"), " ", message), highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    console.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_USAGE, *, to: Console | None = None) -> NoReturn:
    error(message, to=to)
    raise typer.Exit(code)


def shown_path(path: Path) -> str:
    """A path as it can be printed: bytes that are not UTF-8 (lone surrogates in Python) as \\x escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def set_verbose(verbose: bool) -> None:
    """How much the command logs: debug detail with -v/--verbose, else warnings only (worker, serve and bot
    set their level from GATEWAY_LOG_LEVEL). The one place the root's level is chosen (`gateway -v CMD`
    and `gateway CMD -v` both come here)."""
    from gateway.core import logs

    logs.configure(verbose)


def run_async(
    main: Callable[[], Coroutine[Any, Any, T]],
    *,
    interrupted: str | Callable[[], str] = "stopped",
    to: Console | None = None,
) -> T:
    """Run ``main`` in an event loop (SIGTERM cancels it like Ctrl-C does); turn gateway errors into a
    message (on ``to``, default the console) and an exit code; ``interrupted`` is what an interrupted
    command says (a callable: worked out when it happens)."""
    import asyncio
    import signal

    async def cancellable() -> T:
        this = asyncio.current_task()
        assert this is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
        return await main()

    try:
        return asyncio.run(cancellable())
    except (KeyboardInterrupt, asyncio.CancelledError):
        said = interrupted if isinstance(interrupted, str) else interrupted()
        (to or console).print(Text(said, style="yellow"), highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except RefusedError as exc:
        error(str(exc), prefix="refused:", to=to)
        raise typer.Exit(EXIT_REFUSED) from None
    except UserError as exc:
        fail(str(exc), EXIT_USAGE, to=to)
    except GatewayError as exc:
        fail(str(exc), EXIT_FAILED, to=to)


def run_gateway(
    body: Callable[[Gateway], Awaitable[T]],
    *,
    use_database: bool = True,
    interrupted: str = "stopped",
    to: Console | None = None,
) -> T:
    """Open a Gateway, run ``body`` with it, close it; turn gateway errors into a message and exit code.
    SIGTERM cancels like Ctrl-C does, so a killed `gateway submit` cancels its job and records it."""

    from gateway.config.settings import Settings
    from gateway.service.facade import Gateway

    async def main() -> T:
        try:
            gateway = await Gateway.open(Settings(), use_database=use_database)
        except StoreError as exc:
            raise _NoDatabase(f"{exc}\n{NO_DATABASE_HINT}") from exc
        try:
            return await body(gateway)
        finally:
            await gateway.close()

    return run_async(main, interrupted=interrupted, to=to)
