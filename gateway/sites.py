"""Site configurations: one YAML file per donated cluster in site_configs/, and the built-in local site."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.errors import ConfigError
from gateway.yamlconf import load_yaml_model

LOCAL_SITE_NAME = "local"
# Names end up in Slurm job names, paths and directives: keep them to a shell-safe alphabet.
_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
_TIME_LIMIT = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoginConfig(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(pattern=r"^[a-z_][a-z0-9_.-]*$")
    identity_file: Path
    known_hosts: Path = Field(description="pinned host keys; there is no trust-on-first-use")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_channels: int = Field(default=8, ge=1, le=64, description="sshd's MaxSessions defaults to 10")


class PartitionConfig(_Strict):
    name: str = Field(pattern=_NAME)
    gpu_type: str | None = Field(default=None, pattern=_NAME)
    gres: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_:,.-]+$")
    time_limit: str = "00:10:00"
    cpus_per_gpu: int = Field(default=1, ge=1)
    mem_per_gpu: str | None = Field(default=None, pattern=r"^\d+[KMGT]?$")

    @field_validator("time_limit")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        if not _TIME_LIMIT.match(value):
            raise ValueError("expected a Slurm time such as 10, 00:10:00 or 1-00:00:00")
        return value


class SiteConfig(_Strict):
    name: str = Field(pattern=_NAME)
    title: str = ""
    kind: Literal["slurm", "local"] = "slurm"
    login: LoginConfig | None = None
    workdir: str = Field(min_length=1, description="bundle folder, relative to the login home or absolute")
    setup: list[str] = Field(default_factory=list, description="shell lines run before the harness")
    partitions: list[PartitionConfig] = Field(min_length=1)

    def partition_for(self, gpu_type: str | None) -> PartitionConfig | None:
        """The first partition with ``gpu_type`` (any partition's first when None)."""
        if gpu_type is None:
            return self.partitions[0]
        wanted = gpu_type.lower()
        return next((p for p in self.partitions if (p.gpu_type or "").lower() == wanted), None)

    def gpu_types(self) -> list[str]:
        return sorted({p.gpu_type for p in self.partitions if p.gpu_type})


def local_site(workdir: Path) -> SiteConfig:
    """The embedded default: runs the job script as a subprocess here, with no Slurm and no SSH."""
    return SiteConfig(
        name=LOCAL_SITE_NAME,
        title="this machine (job script as a subprocess)",
        kind="local",
        workdir=str(workdir),
        partitions=[PartitionConfig(name="local", gpu_type=None)],
    )


def load_site(path: Path) -> SiteConfig:
    site = load_yaml_model(path, SiteConfig)
    if site.name == LOCAL_SITE_NAME:
        raise ConfigError(f"{path}: name: '{LOCAL_SITE_NAME}' is the built-in site; choose another name")
    if site.kind == "slurm" and site.login is None:
        raise ConfigError(f"{path}: login: a slurm site needs login.host, login.user and key files")
    if site.login is not None:
        base = path.parent
        login = site.login.model_copy(
            update={
                "identity_file": (base / site.login.identity_file).resolve(),
                "known_hosts": (base / site.login.known_hosts).resolve(),
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
