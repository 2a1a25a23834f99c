"""Site configurations: one YAML file per donated cluster in site_configs/, and the built-in local site.

Modelled on Open OnDemand's cluster files: how to log in (pinned host keys, an optional jump host), where
bundles go on the shared file system, the admin's setup lines, which Slurm account and QOS to charge, and
the GPU partitions with their gres, limits and extra directives. Adding a site needs this file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.site_parts import (
    NAME_PATTERN,
    PROGRAM_PATTERN,
    IsolationConfig,
    LoginConfig,
    PartitionConfig,
    ProfileConfig,
    RequeuePolicy,
    SlurmCommands,
    StrictModel,
)
from gateway.config.yamlconf import load_yaml_model
from gateway.core.errors import ConfigError
from gateway.core.modes import UNRANKED_MODES

LOCAL_SITE_NAME = "local"
FALLBACK_KINDS = ("modal", "github")
# What of a run's bundle stays on the site once the run has ended: nothing (the default), or its logs only
# (output.log and result.json). Code, key, spec, harness and job script never stay: there is no setting
# that keeps a key.
KeepBundles = Literal["none", "logs"]
KEEP_BUNDLES: tuple[KeepBundles, ...] = ("none", "logs")


# submit_via: pyslurm was accepted once; a site file that still says so is told why it went.
PYSLURM_GONE = (
    "pyslurm is not supported: use ssh, or local when the gateway runs on the login node (the same Slurm "
    "commands, run as subprocesses). pyslurm works only with the Slurm release it was made for, and PyPI "
    "has it for Slurm 17.11, 18.08 and 25.11 alone, so the gateway drives Slurm through its commands"
)


class SiteConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    title: str = ""
    # modal and github are fallback backends: made from the routing policy (gateway/running/policy.py), never
    # from a site YAML
    kind: Literal["slurm", "local", "modal", "github"] = "slurm"
    submit_via: Literal["ssh", "local"] = Field(
        default="ssh",
        description="ssh: from anywhere over SSH; local: this machine is the login node (Slurm CLI as "
        "subprocesses)",
    )
    login: LoginConfig | None = None
    preference: int = Field(
        default=100, description="routing order among sites that can run a job; lower first"
    )
    workdir: str = Field(min_length=1, description="bundle folder, relative to the login home or absolute")
    python: str = Field(default="python", pattern=PROGRAM_PATTERN, description="interpreter on nodes")
    setup: list[str] = Field(
        default_factory=list,
        description="shell lines run before the harness (modules, a venv or conda), written by the admin",
    )
    container: str | None = Field(
        default=None,
        description="a wrapper the harness runs under, e.g. `apptainer exec --nv /images/torch.sif`",
    )
    isolation: IsolationConfig = Field(default_factory=IsolationConfig)
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    account: str | None = Field(default=None, pattern=NAME_PATTERN)
    qos: str | None = Field(default=None, pattern=NAME_PATTERN)
    slurm: SlurmCommands = Field(default_factory=SlurmCommands)
    requeue: RequeuePolicy = Field(default_factory=RequeuePolicy)
    keep_bundles: KeepBundles = Field(
        default="none",
        description="what of a run's bundle stays on the site after the run ended: none (default), or "
        "logs (output.log and result.json only; code, key, spec, harness and job.sh are always removed)",
    )
    partitions: list[PartitionConfig] = Field(min_length=1)

    @field_validator("submit_via", mode="before")
    @classmethod
    def _no_pyslurm(cls, value: Any) -> Any:
        if value == "pyslurm":
            raise ValueError(PYSLURM_GONE)
        return value

    @field_validator("setup")
    @classmethod
    def _one_line_each(cls, values: list[str]) -> list[str]:
        for value in values:
            if "\n" in value or "\r" in value:
                raise ValueError("each setup entry is one line; list several lines as several entries")
        return values

    @field_validator("keep_bundles", mode="before")
    @classmethod
    def _keep_bundles(cls, value: Any) -> Any:
        return check_keep_bundles(value)

    @field_validator("container")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError("the container wrapper is one line")
        return value

    @model_validator(mode="after")
    def _login_when_needed(self) -> SiteConfig:
        if self.kind == "slurm" and self.submit_via == "ssh" and self.login is None:
            raise ValueError(
                "a Slurm site reached over SSH needs login (host, user, identity_file, known_hosts)"
            )
        names = [p.name for p in self.partitions]
        if len(set(names)) != len(names):
            raise ValueError(f"partition names repeat: {', '.join(sorted(names))}")
        return self

    def partition(self, name: str) -> PartitionConfig | None:
        return next((p for p in self.partitions if p.name == name), None)

    def partitions_for(self, gpu_type: str | None) -> list[PartitionConfig]:
        """The partitions offering ``gpu_type`` (every partition when None), in the file's order."""
        if gpu_type is None:
            return list(self.partitions)
        wanted = gpu_type.lower()
        return [p for p in self.partitions if (p.gpu_type or "").lower() == wanted]

    def partition_for(self, gpu_type: str | None) -> PartitionConfig | None:
        """The first partition with ``gpu_type`` (the first partition when None)."""
        found = self.partitions_for(gpu_type)
        return found[0] if found else None

    def gpu_types(self) -> list[str]:
        return sorted({p.gpu_type for p in self.partitions if p.gpu_type})


def check_keep_bundles(value: Any) -> Any:
    """A ``keep_bundles`` value as one of KEEP_BUNDLES, else a ValueError that says what may be kept."""
    if value not in KEEP_BUNDLES:
        raise ValueError(
            f"keep_bundles must be one of {', '.join(KEEP_BUNDLES)}, not {value!r}: none removes a run's "
            "whole bundle once it ended; logs keeps output.log and result.json only (a run's code, key and "
            "spec are never kept)"
        )
    return value


def local_site(
    workdir: Path, isolation: str = "bubblewrap", keep_bundles: KeepBundles = "none"
) -> SiteConfig:
    """The embedded default: runs the job script as a subprocess here, with no Slurm and no SSH. It is
    never a leaderboard's GPU type; unconfined (``none``) it takes every other mode."""
    unconfined = list(UNRANKED_MODES) if isolation == "none" else []
    return SiteConfig(
        name=LOCAL_SITE_NAME,
        title="this machine (job script as a subprocess)",
        kind="local",
        submit_via="local",
        workdir=str(workdir),
        isolation=IsolationConfig(kind=isolation, unconfined_modes=unconfined),  # type: ignore[arg-type]
        keep_bundles=keep_bundles,
        partitions=[PartitionConfig(name="local", gpu_type=None, max_jobs=4)],
    )


def _resolve(base: Path, path: Path | None) -> Path | None:
    return None if path is None else (base / path.expanduser()).resolve()


def load_site(path: Path) -> SiteConfig:
    site = load_yaml_model(path, SiteConfig)
    if site.name == LOCAL_SITE_NAME:
        raise ConfigError(f"{path}: name: '{LOCAL_SITE_NAME}' is the built-in site; choose another name")
    if site.kind in FALLBACK_KINDS:
        raise ConfigError(
            f"{path}: kind: {site.kind} is a fallback backend: configure it in the routing policy file"
        )
    if site.login is not None:
        # key files are relative to the YAML file, so a site folder can be moved as a whole
        base = path.parent
        jump = site.login.jump_host
        if jump is not None:
            jump = jump.model_copy(update={"identity_file": _resolve(base, jump.identity_file)})
        login = site.login.model_copy(
            update={
                "identity_file": _resolve(base, site.login.identity_file),
                "known_hosts": _resolve(base, site.login.known_hosts),
                "jump_host": jump,
            }
        )
        site = site.model_copy(update={"login": login})
    return site


def load_sites(sites_dir: Path) -> dict[str, SiteConfig]:
    """Every ``*.yaml`` in ``sites_dir`` by site name; every file's errors are reported together."""
    sites: dict[str, SiteConfig] = {}
    errors: list[str] = []
    for path in sorted(sites_dir.glob("*.yaml")):
        try:
            site = load_site(path)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        if site.name in sites:
            errors.append(f"{path}: name: site {site.name!r} is defined twice")
        sites[site.name] = site
    if errors:
        raise ConfigError("\n".join(errors))
    return sites
