"""`gateway runs ...`: list, show, watch and cancel the runs recorded in the database; resume unfinished
ones; one's own submissions: list, read (download) and delete them. `show`, `watch`, `mine`, `code` and
`delete` use a remote gateway's HTTP API with --remote URL (the token `gateway login URL` saved); every
listing prints the API's JSON with --json."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from gateway.cli.common import EXIT_FAILED, console, err_console, fail, run_gateway
from gateway.cli.output import plain, print_report
from gateway.cli.tables import print_run, print_runs

if TYPE_CHECKING:
    from gateway.service.facade import Gateway

app = typer.Typer(
    help="Runs recorded in the database: list, show, watch, cancel, resume; your submissions, their code, "
    "deleting one.",
    no_args_is_help=True,
)
RUN_ARG = typer.Argument(help="a run id, or its first characters as tables show them (e.g. 3f2a9c1e)")
REMOTE = typer.Option(
    "--remote", help="a gateway's URL: read its HTTP API as the user `gateway login URL` saved"
)
JSON = typer.Option("--json", help="print the HTTP API's JSON instead of a table")


def needs_api_extra() -> None:
    """A local --json prints the API's documents: they are the api extra's models."""
    try:
        import gateway.http.api.schemas  # noqa: F401
    except ImportError:
        fail("a local --json needs the api extra: pip install 'kernel-gateway[api]'", to=err_console)


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def remote_read(url: str, read: Any) -> Any:
    """Run ``read(RemoteGateway)`` against a gateway with the saved token; exit with its message."""
    from gateway.cli.common import run_async
    from gateway.client.credentials import credentials_path, token_for
    from gateway.client.remote import RemoteGateway, api_url
    from gateway.core.errors import UserError

    try:
        base = api_url(url)
        token = token_for(base, credentials_path())
    except UserError as exc:
        fail(str(exc), to=err_console)

    async def body() -> Any:
        async with RemoteGateway(base, token.value, provenance=token.source) as gateway:
            return await read(gateway)

    return run_async(body, to=err_console)


@app.command("list")
def list_(
    leaderboard: Annotated[str | None, typer.Option(help="only this leaderboard's runs")] = None,
    user: Annotated[str | None, typer.Option(help="only this user's runs")] = None,
    unfinished: Annotated[bool, typer.Option("--unfinished", help="only runs not finished yet")] = False,
    site: Annotated[str | None, typer.Option(help="only runs routed to this site")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many, newest first")] = 50,
    as_json: Annotated[bool, JSON] = False,
) -> None:
    """List runs, newest first, with who, where, state and score.

    Each row: the run id's first characters (for `runs show`), when it was queued, user, leaderboard,
    file, mode, GPU type, site/partition, Slurm job, state and score. A leaderboard submission has a
    public run and a secret rerun."""

    from gateway.service.facade import OPERATOR

    if as_json:
        needs_api_extra()

    async def body(gateway: Gateway) -> None:
        runs = await gateway.runs(
            leaderboard=leaderboard, user=user, unfinished=unfinished, site=site, limit=limit, caller=OPERATOR
        )
        if as_json:
            from gateway.http.api.schemas import run_out

            print_json([run_out(run).model_dump(mode="json") for run in runs])
        else:
            print_runs(console, runs, f"runs (newest first, at most {limit})")

    run_gateway(body, to=err_console if as_json else None)


@app.command("show")
def show(
    run_id: Annotated[str, RUN_ARG],
    remote: Annotated[str | None, REMOTE] = None,
    as_json: Annotated[bool, JSON] = False,
) -> None:
    """Show everything about one run, and its events.

    State, site, partition, Slurm job and attempt, worker and claims, times, score, error, each test
    and benchmark, and every event recorded for it. With --remote URL: the gateway's GET /api/runs/ID
    (the whole id, unless your token is an admin's), without the events (`runs watch` follows them)."""
    if remote is not None:
        from gateway.cli.api_json import view_of_run

        run = remote_read(remote, lambda gateway: gateway.run(run_id))
        if as_json:
            print_json(run)
        else:
            print_run(console, view_of_run(run), None)
        return
    from gateway.service.facade import OPERATOR
    from gateway.service.runview import run_view

    if as_json:
        needs_api_extra()

    async def body(gateway: Gateway) -> None:

        record = await gateway.run(run_id, caller=OPERATOR)
        if as_json:
            from gateway.http.api.schemas import run_out

            print_json(run_out(record).model_dump(mode="json"))
            return
        # the operator sees a secret rerun whole (the API and the bot show only its verdict)
        view = run_view(record, reveal_secret=True)
        print_run(console, view, await gateway.run_events(record.run_id, caller=OPERATOR))

    run_gateway(body, to=err_console if as_json else None)


@app.command("watch")
def watch(run_id: Annotated[str, RUN_ARG], remote: Annotated[str | None, REMOTE] = None) -> None:
    """Follow a run (and the other runs of its submission, such as its secret rerun) to its end.

    Prints each event, with a live status line on a terminal (state, Slurm's pending reason and expected
    start, place in the gateway's queue, time since queued), then the result table as `gateway submit`
    does. A finished run is shown at once. Exit code as submit's: 0 only when every run passed. Ctrl-C
    stops watching; the run goes on. With --remote URL it follows the run over that gateway's API."""
    if remote is not None:
        from gateway.cli.remote import watch_remote

        watch_remote(remote, run_id)
        return
    from gateway.cli.follow import watch_local

    async def body(gateway: Gateway) -> bool:
        return await watch_local(gateway, run_id, console)

    if not run_gateway(body, interrupted=f"stopped watching: run {run_id} goes on"):
        raise typer.Exit(EXIT_FAILED)


@app.command("mine")
def mine(
    remote: Annotated[str | None, REMOTE] = None,
    user: Annotated[str | None, typer.Option(help="whose (local only; default: your login name)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="at most this many, newest first")] = 20,
    before: Annotated[
        str | None, typer.Option(help="older than this submission (the last id of the previous page)")
    ] = None,
    as_json: Annotated[bool, JSON] = False,
) -> None:
    """List your submissions, newest first, a page at a time.

    Each: leaderboard, file, mode, GPU type, the public run's id, state and score, and whether every run
    (the secret rerun too) passed. With --remote URL: the submissions of the user whose token `gateway
    login URL` saved (GET /api/me/submissions)."""
    from gateway.cli.api_json import submission_row_of
    from gateway.cli.tables import print_submissions, submission_row

    title = f"submissions (newest first, at most {limit})"
    if remote is not None:
        if user is not None:
            fail("--user cannot go with --remote: your token says who you are", to=err_console)
        page = remote_read(remote, lambda gateway: gateway.my_submissions(limit, before))
        if as_json:
            print_json(page)
            return
        items = page.get("submissions")
        rows = [submission_row_of(item) for item in (items if isinstance(items, list) else [])]
        print_submissions(console, rows, title)
        _next_page(page.get("next_before"))
        return
    from gateway.service.facade import OPERATOR

    if as_json:
        needs_api_extra()
    account = user or getpass.getuser()

    async def body(gateway: Gateway) -> None:
        pages = await gateway.own_submissions(account, before=before, limit=limit, caller=OPERATOR)
        following = pages[-1][0].public_id if len(pages) == limit else None
        if as_json:
            from gateway.http.api.schemas import SubmissionPageOut, submission_summary_out

            page = SubmissionPageOut(
                submissions=[submission_summary_out(runs) for runs in pages], next_before=following
            )
            print_json(page.model_dump(mode="json"))
            return
        print_submissions(console, [submission_row(runs) for runs in pages], title)
        _next_page(following)

    run_gateway(body, to=err_console if as_json else None)


def _next_page(following: object) -> None:
    if isinstance(following, str):
        console.print(Text.assemble(("older ones: --before ", "dim"), following), highlight=False)


SUBMISSION_ARG = typer.Argument(help="a submission's id (as `runs mine` lists it)", show_default=False)


@app.command("code")
def code(
    submission: Annotated[str, SUBMISSION_ARG],
    out: Annotated[
        Path | None, typer.Option(help="write it to this file, or into this folder under its file name")
    ] = None,
    remote: Annotated[str | None, REMOTE] = None,
) -> None:
    """Print (or with --out, download) a submission's code.

    Your own submissions' code, at any time (the operator and admins: anyone's); after the deadline of a
    leaderboard that reveals code (`leaderboard reveal`), every ranked submission's. With --remote URL:
    GET /api/submissions/ID/code as the user `gateway login URL` saved."""
    if remote is not None:
        found = remote_read(remote, lambda gateway: gateway.submission_code(submission))
        file_name, text = str(found.get("file_name", "submission")), str(found.get("code", ""))
    else:
        from gateway.service.facade import OPERATOR

        async def body(gateway: Gateway) -> tuple[str, str]:
            found = await gateway.competitions.code(submission, caller=OPERATOR)
            return found.file_name, found.code

        file_name, text = run_gateway(body, to=err_console if out is None else None)
    if out is None:
        # someone else's revealed code could hold escape sequences: on a terminal they show as escapes;
        # into a pipe or a file the code goes as it was submitted
        sys.stdout.write(plain(text).plain if text and sys.stdout.isatty() else text)
        return
    target = out / Path(file_name).name if out.is_dir() else out
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}", EXIT_FAILED)
    console.print(Text.assemble("wrote ", plain(str(target))), highlight=False)


@app.command("delete")
def delete(submission: Annotated[str, SUBMISSION_ARG], remote: Annotated[str | None, REMOTE] = None) -> None:
    """Delete a submission: its runs leave the ranking, queued ones are cancelled, running ones are
    cancelled by their workers.

    Yours until its leaderboard's deadline (after it the final ranking stays); the operator any, at any
    time. The record is kept for the audit trail, shown to admins only. With --remote URL: DELETE
    /api/submissions/ID as the user `gateway login URL` saved."""
    if remote is not None:
        done = remote_read(remote, lambda gateway: gateway.delete_submission(submission))
        console.print(plain(str(done.get("message", ""))), highlight=False)
        return
    from gateway.service.competitions import deleted_text
    from gateway.service.facade import OPERATOR

    async def body(gateway: Gateway) -> str:
        return deleted_text(await gateway.competitions.delete(submission, caller=OPERATOR))

    console.print(plain(run_gateway(body)), highlight=False)


@app.command("cancel")
def cancel(run_id: Annotated[str, RUN_ARG]) -> None:
    """Cancel a run.

    A run no worker has started ends CANCELLED at once; a running one is cancelled by the worker that
    holds it, which cancels its Slurm job. Exit code 1 if it had already finished otherwise."""

    from gateway.service.facade import OPERATOR

    async def body(gateway: Gateway) -> bool:
        console.print(plain(await gateway.cancel_run(run_id, caller=OPERATOR)), highlight=False)
        after = await gateway.run(run_id, caller=OPERATOR)
        return after.finished_at is None or after.state == "CANCELLED"  # pending, or done

    if not run_gateway(body):
        raise typer.Exit(EXIT_FAILED)


@app.command("resume")
def resume(
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="run ids (default: every unfinished run)")
    ] = None,
    site: Annotated[str | None, typer.Option(help="only the runs of this site")] = None,
) -> None:
    """Finish the runs a stopped gateway left unfinished.

    Follows each one's Slurm job (found by job id, or by its name gw-<run id> when the id was never
    recorded) and submits only runs the site has no job for."""

    from gateway.service.runview import view_of_report

    async def body(gateway: Gateway) -> bool:
        async def show(run_id: str, message: str) -> None:
            console.print(Text.assemble((run_id[:8], "dim"), " ", plain(message)), highlight=False)

        reports = await gateway.resume(on_event=show, site=site, run_ids=run_ids or None)
        if not reports:
            console.print("no unfinished runs")
        for report in reports:
            print_report(console, view_of_report(report))
        return all(report.passed for report in reports)

    if not run_gateway(body, interrupted="stopped: the runs were cancelled and recorded as such"):
        raise typer.Exit(EXIT_FAILED)
