"""The remote CLI: `gateway login URL` saves an API token for a gateway, and `gateway submit FILE --remote
URL` submits over its HTTP API with the same live lines and result table as a local `gateway submit`.

Ctrl-C (or SIGTERM) during a remote submit cancels the submission's runs on the server, as it cancels
the run of a local submit, and says so with the server's answer for each run; when the cancel cannot
be sent, it says the runs go on there. With ``--json`` stdout holds only the JSON document; messages
and errors go to stderr."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from gateway.cli.api_json import view_of_run
from gateway.cli.common import EXIT_FAILED, console, err_console, fail, run_async, warn
from gateway.cli.output import plain, print_report
from gateway.client.credentials import credentials_path, save, token_for
from gateway.core.errors import GatewayError, RemoteError, UserError

if TYPE_CHECKING:  # httpx loads when a remote command runs, not for --help
    from gateway.client.remote import RemoteGateway

CANCEL_TIMEOUT_S = 10.0


def login(
    url: Annotated[str, typer.Argument(help="the gateway's URL, e.g. https://gateway.example.org")],
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="read the token from standard input (for scripts)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help='print {"url": ..., "user": ...}')] = False,
) -> None:
    """Check an API token with the gateway (GET /api/me) and save it for `gateway submit --remote URL`.

    Get a token with `/leaderboard token` in Discord or from an admin (`gateway users token NAME`). It is
    saved in $XDG_CONFIG_HOME/kernel-gateway/credentials.json (~/.config/...), readable by you only;
    GATEWAY_TOKEN, when set, is used instead of the saved token."""
    from gateway.client.remote import RemoteGateway, api_url

    out = err_console if as_json else console
    try:
        base = api_url(url)
    except UserError as exc:
        fail(str(exc), to=out)
    if token_stdin:
        token = sys.stdin.readline().strip()
    else:
        token = typer.prompt(f"API token for {base}", hide_input=True, err=as_json).strip()
    if not token:
        fail("no token given: nothing saved", to=out)

    async def check() -> dict[str, Any]:
        async with RemoteGateway(base, token, provenance="this token") as gateway:
            try:
                return await gateway.me()
            except UserError as exc:
                raise UserError(f"{exc}; nothing was saved") from exc

    me = run_async(check, interrupted="stopped: nothing saved", to=out)
    user = str(me.get("user", ""))
    path = credentials_path()
    try:
        save(path, base, token)
    except UserError as exc:
        fail(str(exc), to=out)
    except OSError as exc:
        fail(f"cannot save the token in {path}: {exc.strerror or exc}", EXIT_FAILED, to=out)
    if as_json:
        print(json.dumps({"url": base, "user": user}))
    else:
        console.print(
            Text.assemble("logged in to ", base, " as ", plain(user), f"; the token is saved in {path}"),
            highlight=False,
        )
    if me.get("banned") is True:
        banned = Text.assemble(("warning:", "yellow"), " ", plain(user), " is banned: submitting is refused")
        out.print(banned, highlight=False)


def submit_remote(
    url: str,
    file_name: str,
    code: str,
    leaderboard: str,
    *,
    gpu: str | None,
    mode: str,
    site: str | None,
    as_json: bool,
    detach: bool = False,
) -> None:
    """Submit over a gateway's HTTP API, follow the runs to their end, print the live lines and the
    result table (or, with ``as_json``, only the submission's JSON); exit 1 unless every run passed.
    ``detach``: print the ids and how to follow, and return once the gateway has queued it."""
    import asyncio

    from gateway.cli.follow import follow_remote, print_detached_remote
    from gateway.client.remote import RemoteGateway

    out = err_console if as_json else console
    base, token = _login_for(url, out)
    interrupted = ["stopped before the gateway acknowledged the submission: if it got there, it runs"]

    async def body() -> bool:
        async with RemoteGateway(base, token.value, provenance=token.source) as gateway:
            submitted = await gateway.submit(file_name, code.encode("utf-8"), leaderboard, gpu, mode, site)
            submission_id, run_ids = _submitted(base, submitted)
            if detach:
                print_detached_remote(console, base, submitted)
                return True
            if not as_json:
                _print_submitted(base, submitted, submission_id)
            try:
                first = await gateway.submission(submission_id)
                submission = await follow_remote(gateway, first, console, quiet=as_json)
            except asyncio.CancelledError:
                interrupted[0] = await _cancel(gateway, submission_id, run_ids)
                raise
        return _finish(submission, as_json)

    if not run_async(body, interrupted=lambda: interrupted[0], to=out):
        raise typer.Exit(EXIT_FAILED)


def watch_remote(url: str, run_id: str, *, as_json: bool = False) -> None:
    """`gateway runs watch RUN --remote URL`: follow the run's submission over the API to its end, as
    `gateway submit --remote` does (Ctrl-C stops watching; the runs go on)."""
    from gateway.cli.follow import follow_remote
    from gateway.client.remote import RemoteGateway

    out = err_console if as_json else console
    base, token = _login_for(url, out)

    async def body() -> bool:
        async with RemoteGateway(base, token.value, provenance=token.source) as gateway:
            run = await gateway.run(run_id)
            first = await gateway.submission(str(run.get("submission_id")))
            submission = await follow_remote(gateway, first, console, quiet=as_json)
        return _finish(submission, as_json)

    stopped = f"stopped watching: run {run_id} goes on at {base}"
    if not run_async(body, interrupted=stopped, to=out):
        raise typer.Exit(EXIT_FAILED)


def _login_for(url: str, out: Console) -> tuple[str, Any]:
    """The gateway's base URL and the saved (or GATEWAY_TOKEN) token for it; exit 2 saying what to do."""
    from gateway.client.remote import api_url

    try:
        base = api_url(url)
        return base, token_for(base, credentials_path())
    except UserError as exc:
        fail(str(exc), to=out)


def _finish(submission: dict[str, Any], as_json: bool) -> bool:
    """Print a finished submission (the result tables, or its JSON); whether every run passed."""
    runs = [run for run in submission.get("runs") or [] if isinstance(run, dict)]
    if as_json:
        print(json.dumps(submission, indent=2, ensure_ascii=False))
    else:
        _print_runs(console, runs)
    return bool(runs) and all(run.get("passed") is True for run in runs)


def _submitted(base: str, submitted: dict[str, Any]) -> tuple[str, list[str]]:
    submission_id = submitted.get("submission_id")
    runs = submitted.get("runs")
    if not isinstance(submission_id, str) or not isinstance(runs, list):
        raise RemoteError(f"{base} answered the submission without its id or runs: is it a gateway?")
    return submission_id, [str(run.get("run_id")) for run in runs if isinstance(run, dict)]


def _print_submitted(base: str, submitted: dict[str, Any], submission_id: str) -> None:
    place = submitted.get("queue_position")
    line = Text.assemble(
        ("submission ", "dim"),
        str(submission_id),
        (" at ", "dim"),
        base,
        (" (leaderboard ", "dim"),
        plain(submitted.get("leaderboard")),
        (f"; place {place} in line)" if isinstance(place, int) else ")", "dim"),
    )
    console.print(line, highlight=False)


def _print_runs(out: Console, runs: list[dict[str, Any]]) -> None:
    """The result table of each public run, with the verdict of its secret rerun (same GPU type)."""
    secret = {run.get("gpu_type"): run for run in runs if run.get("secret")}
    for run in runs:
        if run.get("secret"):
            continue
        rerun = secret.get(run.get("gpu_type"))
        print_report(out, view_of_run(run, None if rerun is None else rerun.get("passed") is True))
    if not any(not run.get("secret") for run in runs):
        warn("the gateway shows no public run of this submission")


async def _cancel(gateway: RemoteGateway, submission_id: str, run_ids: list[str]) -> str:
    """Cancel the submission's runs on the server (Ctrl-C, SIGTERM); what to tell the user."""
    import asyncio

    from gateway.client.remote import clean

    said = []
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT_S):
            for run_id in run_ids:
                answer = await gateway.cancel(run_id)
                said.append(clean(str(answer.get("message", f"run {run_id}: cancel sent")), 300))
    except (GatewayError, TimeoutError) as exc:
        why = str(exc) or "no answer in time"
        return (
            f"stopped following submission {submission_id}, but could not cancel it ({why}): its runs go "
            f"on at {gateway.url}; cancel them with POST {gateway.url}/api/runs/RUN/cancel"
        )
    return f"stopped: submission {submission_id} cancelled at {gateway.url}\n" + "\n".join(said)
