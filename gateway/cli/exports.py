"""`gateway leaderboard export` and `gateway leaderboard reveal`: a board's ranking written as CSV and JSON
(final once its deadline has passed), and whether its ranked code is revealed after its end
(gateway/service/competitions.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from gateway.cli.common import EXIT_FAILED, console, err_console, fail, run_gateway
from gateway.cli.output import plain
from gateway.service.authority import OPERATOR

if TYPE_CHECKING:
    from gateway.client.remote import RemoteGateway
    from gateway.service.facade import Gateway

FORMATS = ("csv", "json")


def export(
    name: Annotated[str, typer.Argument(help="the leaderboard's name", show_default=False)],
    gpu: Annotated[str | None, typer.Option(help="only this GPU type (default: every one ranked)")] = None,
    out: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="write NAME-ranking.csv and .json into this folder (default: .)"),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv or json: print that format to stdout (with --out: write only it)"),
    ] = None,
    remote: Annotated[
        str | None, typer.Option("--remote", help="a gateway's URL: export over its HTTP API")
    ] = None,
) -> None:
    """Export leaderboard NAME's whole ranking as CSV and JSON.

    The rows are those `leaderboard show` prints (rank, user, score, GPU type, submission id, file, site,
    submitted and finished times, run id), every ranked user's best, per GPU type. Once the deadline has
    passed the ranking is final: a run whose result came after it never ranks. Without options, writes
    NAME-ranking.csv and NAME-ranking.json into the current folder; --format prints one to stdout."""
    if fmt is not None and fmt not in FORMATS:
        fail(f"--format {fmt!r}: give csv or json")
    formats = [fmt] if fmt is not None else list(FORMATS)
    if remote is not None:
        from gateway.cli.runs import remote_read

        async def read(gateway: RemoteGateway) -> dict[str, str]:
            return {f: await gateway.export(name, f, gpu) for f in formats}

        texts: dict[str, str] = remote_read(remote, read)
    else:

        async def body(gateway: Gateway) -> dict[str, str]:
            done = await gateway.competitions.export(name, gpu, caller=OPERATOR)
            return {f: done.csv() if f == "csv" else done.json() for f in formats}

        texts = run_gateway(body, to=err_console if out is None and fmt else None)
    if out is None and fmt is not None:
        sys.stdout.write(texts[fmt])
        return
    folder = out or Path()
    from gateway.service.competitions import export_file_name

    try:
        folder.mkdir(parents=True, exist_ok=True)
        for f, text in texts.items():
            target = folder / export_file_name(name, f)
            target.write_text(text, encoding="utf-8")
            console.print(Text.assemble("wrote ", plain(str(target))), highlight=False)
    except OSError as exc:
        fail(f"cannot write the export into {folder}: {exc.strerror or exc}", EXIT_FAILED)


def reveal(
    name: Annotated[str, typer.Argument(help="the leaderboard's name", show_default=False)],
    off: Annotated[bool, typer.Option("--off", help="stop revealing it")] = False,
) -> None:
    """Reveal leaderboard NAME's ranked submissions' code once its deadline has passed (--off: do not).

    Anyone who may see the board can then read (download) the code of each submission that ranks, with
    `gateway runs code ID`, GET /api/submissions/ID/code or /leaderboard download. Before the deadline,
    and without this, only a submission's owner and admins can."""

    async def body(gateway: Gateway) -> None:
        board = await gateway.competitions.set_reveal_code(name, not off, caller=OPERATOR)
        state = "reveals its ranked code after its deadline" if board.reveal_code else "keeps code private"
        console.print(Text.assemble("leaderboard ", plain(board.name), f" {state}"), highlight=False)

    run_gateway(body)
