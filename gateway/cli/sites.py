"""`gateway sites ...`: site admins check a site's YAML, then the site itself, step by step; gateway admins
drain a site (routing skips it), open it again, see every site's health, and sweep a site's work folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from gateway.cli.common import fail, run_gateway, shown_path
from gateway.cli.output import plain
from gateway.cli.tables import print_site_health
from gateway.core.errors import ConfigError
from gateway.service.authority import OPERATOR

if TYPE_CHECKING:  # the service, settings and site check load when a command runs, not for --help
    from gateway.service.facade import Gateway
    from gateway.sitecheck import SiteCheck, Step

app = typer.Typer(
    help="Sites: validate the YAML, check a site end to end, drain and resume it, see their health, "
    "sweep leftover bundles.",
    no_args_is_help=True,
)
console = Console()
STATUS_STYLE = {"PASS": "bold green", "FAIL": "bold red", "SKIP": "yellow"}
TITLE_WIDTH = 22
# The defaults of gateway.sitecheck.DEFAULT_PROBE_TIMEOUT_S and
# gateway.service.processor.DEFAULT_SWEEP_GRACE_S, written out so that `--help` loads neither
# (tests/unit/test_cli_start.py checks they agree).
PROBE_TIMEOUT_S = 300.0
SWEEP_GRACE_HOURS = 24.0


@app.command("validate")
def validate(
    sites_dir: Annotated[
        Path | None, typer.Argument(help="folder of site YAML files (default: GATEWAY_SITES_DIR)")
    ] = None,
) -> None:
    """Check every site YAML; print each problem with file, line and field.

    Exit code 0 when every file is valid, 1 when one is not, 2 when the folder is missing or holds no
    *.yaml file."""
    from gateway.config.settings import Settings
    from gateway.config.sites import load_sites

    folder = sites_dir or Settings().sites_dir
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        fail(f"{shown_path(folder)} {what}: give the folder that holds the site YAML files (*.yaml)")
    if not any(folder.glob("*.yaml")):
        fail(
            f"{shown_path(folder)} holds no site YAML file (*.yaml): nothing to validate "
            "(docs/sites.md shows what one holds)"
        )
    try:
        sites = load_sites(folder)
    except ConfigError as exc:
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for site in sites.values():
        parts = ", ".join(f"{p.name} ({p.gpu_type or 'no GPU'})" for p in site.partitions)
        line = Text.assemble(("ok", "green"), f" {site.name}: ", plain(site.title), f"  partitions: {parts}")
        console.print(line, highlight=False, soft_wrap=True)


@app.command("init")
def init(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="where to write it (default: <sites folder>/<cluster>.yaml)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace a file that is already there")] = False,
) -> None:
    """Write this login node's Slurm cluster as a site file to review (submit_via: local).

    Reads sinfo (partitions, GPU gres, MaxTime), scontrol (the cluster's name) and sacctmgr (your default
    account and QOS); `gateway submit --gpu X` does the same on the fly while no site is configured."""
    import asyncio

    from gateway.cli.common import fail, shown_path
    from gateway.config.discovery import discover, site_yaml
    from gateway.config.settings import Settings
    from gateway.core.errors import GatewayError

    settings = Settings()
    try:
        found = asyncio.run(discover(settings.local_isolation))
    except GatewayError as exc:
        fail(str(exc), 1)
    path = output or settings.sites_dir / f"{found.site.name}.yaml"
    if path.exists() and not force:
        fail(f"{shown_path(path)} exists: review it, or pass --force to replace it (or --output PATH)", 1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(site_yaml(found), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {shown_path(path)}: {exc.strerror or exc}", 1)
    parts = ", ".join(
        f"{p.name} ({p.gpu_type or 'GPU type unknown'}, {p.time_limit})" for p in found.site.partitions
    )
    console.print(
        Text.assemble(
            "wrote ", plain(shown_path(path)), ": site ", plain(found.site.name), " partitions ", plain(parts)
        ),
        highlight=False,
        soft_wrap=True,
    )
    for note in found.notes:
        console.print(Text.assemble("note: ", plain(note)), highlight=False, soft_wrap=True)
    check = f"gateway sites check {found.site.name}"
    if output is not None:
        check += f" --sites-dir {shown_path(path.parent)}"
    console.print(Text.assemble("review it, then: ", plain(check)), highlight=False, soft_wrap=True)


def print_step(step: Step) -> None:
    line = Text()
    line.append(f"{step.status:<4}", style=STATUS_STYLE[step.status])
    line.append(f"  {step.title:<{TITLE_WIDTH}}  ")
    line.append(step.detail)
    console.print(line, highlight=False, soft_wrap=True)
    if step.status == "FAIL" and step.fix:
        console.print(Text.assemble(" " * 6, ("fix: ", "bold"), step.fix), highlight=False, soft_wrap=True)


@app.command("check")
def check(
    name: Annotated[str, typer.Argument(help="the site's name (its `name:` in the YAML)")],
    sites_dir: Annotated[
        Path | None, typer.Option(help="folder of site YAML files (default: GATEWAY_SITES_DIR)")
    ] = None,
    probe: Annotated[
        bool, typer.Option("--probe/--no-probe", help="run the probe job (a real test-mode run)")
    ] = True,
    probe_timeout: Annotated[
        float, typer.Option(help="seconds a probe job may take, queueing included")
    ] = PROBE_TIMEOUT_S,
) -> None:
    """Walk site NAME step by step (YAML, host key, login, Slurm, partitions, account/QOS, workdir, a
    probe job per GPU type, the isolation of submitted code) and say PASS, FAIL with what to fix, or
    SKIP. Exit code 0 only if none failed. With a database, the isolation verdict is recorded: leaderboard
    runs go only to a site whose isolation passed."""
    import asyncio
    import contextlib
    import functools

    from gateway.config.settings import Settings
    from gateway.service.facade import Gateway, probe_gateway
    from gateway.sitecheck import SiteCheck

    settings = Settings(sites_dir=sites_dir) if sites_dir is not None else Settings()

    async def progress(message: str) -> None:
        console.print(Text(f"      … {message}", style="dim"), highlight=False, soft_wrap=True)

    async def main() -> SiteCheck:
        # with a database, the isolation verdict is kept for every gateway process (a folder that does not
        # load is the YAML step's to report: then nothing is recorded)
        gateway = None
        if settings.database_url:
            with contextlib.suppress(ConfigError):
                gateway = await Gateway.open(settings)
        site_check = SiteCheck(
            settings,
            name,
            probe=probe,
            probe_timeout_s=probe_timeout,
            on_progress=progress,
            record_isolation=gateway.isolation.record if gateway is not None else None,
            open_gateway=functools.partial(probe_gateway, settings),
        )
        console.print(f"checking site {name} (site files in {settings.sites_dir})", highlight=False)
        try:
            async for step in site_check.steps():
                print_step(step)
        finally:
            if gateway is not None:
                await gateway.close()
        return site_check

    try:
        done = asyncio.run(main())
    except KeyboardInterrupt:
        console.print("[yellow]stopped[/]")
        raise typer.Exit(130) from None
    failed = [s for s in done.results if s.status == "FAIL"]
    skipped = [s for s in done.results if s.status == "SKIP"]
    if failed:
        console.print(
            f"[bold red]{len(failed)} of {len(done.results)} steps failed[/]"
            + (f", {len(skipped)} skipped" if skipped else ""),
            highlight=False,
        )
        raise typer.Exit(1)
    console.print(
        f"[bold green]site {name}: all {len(done.results) - len(skipped)} steps that ran passed[/]"
        + (f" ({len(skipped)} skipped)" if skipped else ""),
        highlight=False,
    )


@app.command("drain")
def drain(
    name: Annotated[str, typer.Argument(help="the site's name")],
    reason: Annotated[str | None, typer.Option(help="why, shown to submitters who name the site")] = None,
) -> None:
    """Drain site NAME: routing skips it until `gateway sites resume NAME`.

    A submission naming the site is refused with the reason; runs already on it go on."""

    async def body(gateway: Gateway) -> None:
        await gateway.sites.set_drained(name, True, reason, caller=OPERATOR)

    run_gateway(body)
    console.print(
        Text.assemble("site ", plain(name), " drained", *((": ", plain(reason)) if reason else ())),
        highlight=False,
    )


@app.command("resume")
def resume(name: Annotated[str, typer.Argument(help="the site's name")]) -> None:
    """Open site NAME to routing again after `gateway sites drain`."""

    async def body(gateway: Gateway) -> None:
        await gateway.sites.set_drained(name, False, caller=OPERATOR)

    run_gateway(body)
    console.print(Text.assemble("site ", plain(name), " open to routing again"), highlight=False)


@app.command("health")
def health() -> None:
    """Show every site's health: drained or open, its isolation and whether its probe passed, failures in
    a row, last success and failure.

    As the workers recorded them, with the last error and the reason a site was drained."""

    from gateway.config.sites import LOCAL_SITE_NAME

    async def body(gateway: Gateway) -> None:
        sites = {LOCAL_SITE_NAME: gateway.sites.local, **gateway.sites.configured}
        print_site_health(console, sites, await gateway.sites.health(), await gateway.isolation_checks())

    run_gateway(body)


@app.command("clean")
def clean(
    name: Annotated[str, typer.Argument(help="the site's name")],
    older_than_hours: Annotated[
        float, typer.Option(min=0, help="leave folders that changed within this many hours")
    ] = SWEEP_GRACE_HOURS,
) -> None:
    """Remove leftover bundles from site NAME's work folder: those of runs that are finished or unknown to
    the database and unchanged for --older-than-hours.

    A folder of a run still queued or running is never touched; the site's keep_bundles applies (logs:
    output.log and result.json stay). Runs remove their own bundles when they end: this sweeps what a
    stopped worker or a failed removal left."""

    async def body(gateway: Gateway) -> None:
        sweep = await gateway.processor.clean_site(name, older_than_hours * 3600, caller=OPERATOR)
        console.print(
            Text.assemble(
                "site ",
                plain(sweep.site),
                f": removed {len(sweep.removed)} leftover bundle(s); kept {sweep.unfinished} of runs "
                f"still queued or running and {sweep.recent} changed in the last {older_than_hours:g} h",
            ),
            highlight=False,
        )

    run_gateway(body)
