"""`gateway render`: print the job script a site would get for a task, without submitting anything.

A site admin's view of exactly what reaches sbatch: the site's account, QOS, partition directives and
setup lines, rendered by the same templates and the same context as a real submission. The bundle path
uses the site's workdir as written in its YAML (a real run resolves a relative one against the login
user's home) and a placeholder run id, so the output is byte-identical from call to call.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from gateway.core.errors import ConfigError, UserError
from gateway.core.modes import RunMode

if TYPE_CHECKING:  # the backends, settings and site models load when the command runs, not for --help
    from gateway.config.settings import Settings
    from gateway.config.site_parts import PartitionConfig
    from gateway.config.sites import SiteConfig

PLACEHOLDER_RUN_ID = "00000000-0000-0000-0000-000000000000"
errors = Console(stderr=True)


def render_script(
    settings: Settings,
    site_name: str,
    task_dir: Path,
    *,
    gpu_type: str | None = None,
    partition_name: str | None = None,
    mode: str = "test",
    run_id: str = PLACEHOLDER_RUN_ID,
) -> str:
    """The job script for ``site_name``'s partition (by name, else the first with ``gpu_type``, else its
    first) running the task in ``task_dir``; raises UserError or ConfigError when it cannot be made."""
    from gateway.config.tasks import load_task
    from gateway.running.backends.base import JobRequest, script_context
    from gateway.running.bundle import BundlePaths, build_spec
    from gateway.running.jobscript import TemplateRenderer

    site = _site(settings, site_name)
    partition = _partition(site, gpu_type, partition_name)
    task = load_task(task_dir)
    request = JobRequest(run_id, site, partition, task, "", build_spec(run_id, mode, task), "")
    renderer = TemplateRenderer(settings.templates_dir)
    paths = BundlePaths.under(site.workdir, run_id)
    return renderer.render(
        renderer.template_for(site.name, site.kind), script_context(request, paths, site.python)
    )


def _site(settings: Settings, name: str) -> SiteConfig:
    """The site as the service resolves it (gateway/service/sitedir.py): a site file's, or the local site."""
    from gateway.config.sites import load_sites
    from gateway.service.sitedir import SiteDirectory

    try:
        return SiteDirectory(settings, load_sites(settings.sites_dir)).site(name)
    except UserError as exc:
        raise UserError(f"{exc} (site files in {settings.sites_dir})") from None


def _partition(site: SiteConfig, gpu_type: str | None, name: str | None) -> PartitionConfig:
    if name is not None:
        found = site.partition(name)
        if found is None:
            known = ", ".join(p.name for p in site.partitions)
            raise UserError(f"site {site.name} has no partition {name!r}; it has: {known}")
        if gpu_type is not None and (found.gpu_type or "").lower() != gpu_type.lower():
            raise UserError(
                f"partition {name} of site {site.name} has GPU type {found.gpu_type}, not {gpu_type}"
            )
        return found
    chosen = site.partition_for(gpu_type)
    if chosen is None:
        offered = ", ".join(site.gpu_types()) or "none"
        raise UserError(f"site {site.name} has no partition with GPU type {gpu_type!r}; it offers: {offered}")
    return chosen


def render(
    site: Annotated[str, typer.Option(help="site name from the sites folder (or local)")],
    task: Annotated[Path, typer.Option(help="task directory holding task.yml")],
    gpu: Annotated[str | None, typer.Option(help="GPU type: the site's first partition offering it")] = None,
    partition: Annotated[str | None, typer.Option(help="partition name (instead of --gpu)")] = None,
    mode: Annotated[RunMode, typer.Option(case_sensitive=False, help="what the job runs")] = RunMode.TEST,
    run_id: Annotated[
        str, typer.Option(help="run id to show in paths and the job name")
    ] = PLACEHOLDER_RUN_ID,
) -> None:
    """Print the job script a site would get for a task, without submitting anything."""
    from gateway.config.settings import Settings

    try:
        script = render_script(
            Settings(), site, task, gpu_type=gpu, partition_name=partition, mode=mode.value, run_id=run_id
        )
    except (UserError, ConfigError) as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    sys.stdout.write(script)
