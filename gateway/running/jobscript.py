"""Renders job scripts from Jinja templates: sandboxed, StrictUndefined, every value shell-quoted.

Quoting is not left to template authors: every ``{{ value }}`` passes through ``shlex.quote`` on its way
out, unless the value is a :class:`Trusted` string (a site admin's setup line from the site YAML).
A site may override the base template with ``templates/sites/<site>.sbatch.j2`` that extends it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from gateway.core import resources
from gateway.core.errors import ConfigError


class Trusted(str):
    """A string written by a site admin in the site YAML, inserted into the script as it is."""

    __slots__ = ()


def _shell_quote(value: Any) -> str:
    if isinstance(value, Trusted):
        return str(value)
    if value is None:
        raise ConfigError("a template printed None: guard optional values with {% if %}")
    return shlex.quote(str(value))


@dataclass(frozen=True)
class ScriptContext:
    """What a job-script template may use. Values are quoted on output; the admin's ``setup`` lines and
    ``container`` wrapper are Trusted (inserted as written)."""

    run_id: str
    job_name: str
    bundle_dir: str
    runner: str  # the harness's __main__.py in the bundle
    output_file: str
    python: str
    partition: str | None = None
    gres: str | None = None
    time_limit: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    directives: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    container: str | None = None
    isolation_args: tuple[str, ...] = ()
    runner_verb: str = "run"  # "pool": a warm pool job, whose runner takes runs one after another

    def as_template_vars(self) -> dict[str, Any]:
        fields = dict(self.__dict__)
        fields["directives"] = list(self.directives)
        fields["isolation_args"] = list(self.isolation_args)
        fields["setup"] = [Trusted(line) for line in self.setup]
        fields["container"] = Trusted(self.container) if self.container else None
        return fields


class TemplateRenderer:
    """Loads templates from one folder (default: the gateway's own, gateway.core.resources); ``render(name,
    ctx)`` gives a deterministic script."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        templates_dir = templates_dir or resources.templates_dir()
        self._dir = templates_dir
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            undefined=jinja2.StrictUndefined,
            finalize=_shell_quote,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def template_for(self, site_name: str, kind: str) -> str:
        if kind == "local":
            return "local.sh.j2"
        if kind in ("modal", "github"):
            return "fallback.sh.j2"
        override = f"sites/{site_name}.sbatch.j2"
        return override if (self._dir / override).is_file() else "base.sbatch.j2"

    def render(self, template_name: str, ctx: ScriptContext) -> str:
        try:
            return self._env.get_template(template_name).render(ctx.as_template_vars())
        except jinja2.TemplateNotFound as exc:
            raise ConfigError(
                f"template {exc.name} is not in {self._dir}: point GATEWAY_TEMPLATES_DIR at a folder "
                "that has it, or unset it to use the templates shipped with the gateway"
            ) from exc
        except jinja2.TemplateError as exc:
            where = f"{exc.filename}:{exc.lineno}" if isinstance(exc, jinja2.TemplateSyntaxError) else ""
            raise ConfigError(f"template {template_name} {where}: {exc}") from exc
