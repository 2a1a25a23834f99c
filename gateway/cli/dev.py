"""`gateway dev up|down|status|env`: start, stop and inspect the local dev stack."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:  # the stack's modules load when a command runs, not for --help
    from gateway.devstack import DevStackError

app = typer.Typer(help="Start, stop and inspect the local dev stack", no_args_is_help=True)
_err = Console(stderr=True)


def _fail(exc: DevStackError) -> typer.Exit:
    _err.print(f"[bold red]dev stack:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


@app.command()
def up() -> None:
    """Install what is missing and start every part (a no-op when the stack is already up)."""
    from gateway.devstack import DevStack, DevStackError

    try:
        DevStack().up()
    except DevStackError as exc:
        raise _fail(exc) from exc


@app.command()
def down(
    purge: bool = typer.Option(False, "--purge", help="also delete the state folder"),
) -> None:
    """Stop every daemon the stack started and check that nothing is left."""
    from gateway.devstack import DevStack, DevStackError

    try:
        DevStack().down(purge=purge)
    except DevStackError as exc:
        raise _fail(exc) from exc


@app.command()
def status() -> None:
    """Show each part with its state, PID and port."""
    from rich.table import Table

    from gateway.devstack import DevStack

    stack = DevStack()
    table = Table(title=f"dev stack ({stack.state_dir})")
    table.add_column("part")
    table.add_column("state")
    table.add_column("pid", justify="right")
    table.add_column("port / detail")
    for part in stack.status():
        colour = "green" if part.state in ("running", "ready") else "red"
        table.add_row(part.name, f"[{colour}]{part.state}[/]", str(part.pid or ""), part.detail)
    Console().print(table)


@app.command()
def env() -> None:
    """Print `export KEY=value` lines for the running stack (eval "$(gateway dev env)")."""
    from gateway.devstack import DevStack, DevStackError

    try:
        values = DevStack().env()
    except DevStackError as exc:
        raise _fail(exc) from exc
    for key, value in values.items():
        typer.echo(f"export {key}={shlex.quote(value)}")
