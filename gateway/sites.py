"""Site configurations: one YAML file per donated cluster in site_configs/, and the built-in local site.

Modelled on Open OnDemand's cluster files: how to log in (pinned host keys, an optional jump host), where
bundles go on the shared file system, the admin's setup lines, which Slurm account and QOS to charge, and
the GPU partitions with their gres, limits and extra directives. Adding a site needs this file alone.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.errors import ConfigError
from gateway.modes import UNRANKED_MODES, UnrankedMode
from gateway.states import JobState
from gateway.yamlconf import load_yaml_model, worded

LOCAL_SITE_NAME = "local"
FALLBACK_KINDS = ("modal", "github")
# Names end up in Slurm job names, paths and directives: keep them to a shell-safe alphabet.
_NAME = worded(
    r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
    "a name that starts with a letter, then up to 63 letters, digits, '_', '.' or '-' (no spaces)",
)
_LOGIN_USER = worded(
    r"^[a-z_][a-z0-9_.-]*$",
    "a login name: lower-case letters, digits, '_', '.' or '-', starting with a letter or '_'",
)
_GRES = worded(
    r"^[A-Za-z0-9_:,.-]+$", "a Slurm gres such as gpu:h100:1 (letters, digits, '_', ':', ',', '.', '-')"
)
_MEMORY = worded(
    r"^\d+[KMGT]?$", "a Slurm memory size: a whole number with an optional K, M, G or T, e.g. 32G"
)
_BIN_DIR = worded(r"^/[A-Za-z0-9_./+-]*$", "an absolute folder such as /opt/slurm/bin (no spaces or quotes)")
_PROGRAM = worded(
    r"^[A-Za-z0-9_./+-]+$", "a program name or path such as python3 or /opt/venv/bin/python (no spaces)"
)
_TIME_LIMIT = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$")
# `--constraint=a100_80g`, `--exclusive`: one option, no spaces, no shell or sbatch metacharacters
_DIRECTIVE = r"^--[a-z][a-z0-9-]*(=[A-Za-z0-9_:,.@%/+=|&!*-]+)?$"
_SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "sacctmgr")
# A job that ended in one of these did not fail because of the submission: run it again (once by default).
DEFAULT_REQUEUE_ON = (JobState.NODE_FAIL, JobState.PREEMPTED, JobState.BOOT_FAIL)
# What of a run's bundle stays on the site once the run has ended: nothing (the default), or its logs only
# (output.log and result.json). Code, key, spec, harness and job script never stay: there is no setting
# that keeps a key.
KeepBundles = Literal["none", "logs"]
KEEP_BUNDLES: tuple[KeepBundles, ...] = ("none", "logs")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JumpHostConfig(_Strict):
    """A bastion to pass through (asyncssh tunnels the site's connection over it)."""

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(pattern=_LOGIN_USER)
    identity_file: Path | None = Field(default=None, description="default: the site's identity_file")


class LoginConfig(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(pattern=_LOGIN_USER)
    identity_file: Path
    known_hosts: Path = Field(description="pinned host keys (of the jump host too)")
    trust_on_first_use: bool = Field(
        default=False,
        description="record an unknown host's key in known_hosts on first contact; a changed key is "
        "always refused. Off unless a site says so explicitly.",
    )
    jump_host: JumpHostConfig | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    command_timeout_s: float = Field(default=30.0, gt=0)
    keepalive_s: float = Field(default=15.0, gt=0)
    max_channels: int = Field(default=8, ge=3, le=64, description="sshd's MaxSessions defaults to 10")
    tail_channels: int = Field(default=4, ge=0, description="channels streaming job output live")

    @model_validator(mode="after")
    def _channel_budget(self) -> LoginConfig:
        if self.tail_channels > self.max_channels - 2:
            raise ValueError("tail_channels must leave one channel for SFTP and one for commands")
        return self


class PartitionConfig(_Strict):
    name: str = Field(pattern=_NAME)
    gpu_type: str | None = Field(default=None, pattern=_NAME)
    gres: str | None = Field(default=None, pattern=_GRES)
    time_limit: str = "00:10:00"
    cpus_per_gpu: int = Field(default=1, ge=1)
    mem_per_gpu: str | None = Field(default=None, pattern=_MEMORY)
    max_jobs: int = Field(default=16, ge=1, description="concurrency cap: our jobs at once here")
    directives: list[str] = Field(
        default_factory=list, description="extra #SBATCH options, e.g. --constraint=a100_80g"
    )

    @field_validator("time_limit")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        if not _TIME_LIMIT.match(value):
            raise ValueError("expected a Slurm time such as 10, 00:10:00 or 1-00:00:00")
        return value

    @field_validator("directives")
    @classmethod
    def _directives(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(_DIRECTIVE, value):
                raise ValueError(
                    f"{value!r} is not one sbatch option such as --constraint=a100 (no spaces or quotes)"
                )
        return values


class SlurmCommands(_Strict):
    """Where the Slurm client commands live on the login node (default: found on its PATH)."""

    bin_dir: str | None = Field(default=None, pattern=_BIN_DIR)
    sbatch: str = "sbatch"
    squeue: str = "squeue"
    sacct: str = "sacct"
    scancel: str = "scancel"
    sinfo: str = "sinfo"
    sacctmgr: str = "sacctmgr"

    def argv0(self, command: str) -> str:
        if command not in _SLURM_COMMANDS:
            raise ValueError(f"not a Slurm command: {command}")
        name: str = getattr(self, command)
        return f"{self.bin_dir.rstrip('/')}/{name}" if self.bin_dir and "/" not in name else name


class RequeuePolicy(_Strict):
    """Which ends of a job are not the submission's fault, and how often such a run starts again."""

    on: list[JobState] = Field(default_factory=lambda: list(DEFAULT_REQUEUE_ON))
    max_attempts: int = Field(default=2, ge=1, le=5, description="attempts in all, the first included")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true
        if isinstance(data, dict) and True in data and "on" not in data:
            return {("on" if key is True else key): value for key, value in data.items()}
        return data

    def allows(self, state: JobState, attempt: int) -> bool:
        return state in self.on and attempt < self.max_attempts


class ProfileConfig(_Strict):
    """Profile mode on this site: the profiler's tables always; Nsight Compute's report when ``ncu`` is on
    and the nodes have ``ncu`` on the job's PATH (harness/ncu.py)."""

    ncu: bool = Field(
        default=False,
        description="run profile mode's benchmarks under Nsight Compute (ncu) too and return its report; "
        "the nodes' driver must let users read the GPU's performance counters",
    )


ISOLATION_KINDS = ("bubblewrap", "apptainer", "none")
_PATH = worded(r"^/[A-Za-z0-9_./+@-]*$", "an absolute path such as /usr/bin/bwrap (no spaces or quotes)")


class IsolationConfig(_Strict):
    """The sandbox around submitted code on this site's nodes (harness/sandbox.py). ``bubblewrap`` needs
    unprivileged user namespaces and the bwrap binary on the nodes; ``apptainer`` an image with python
    and torch; ``none`` runs submitted code unconfined as the site's account, and then the site takes
    only the modes its admin lists in ``unconfined_modes`` (never leaderboard runs)."""

    kind: Literal["bubblewrap", "apptainer", "none"] = "bubblewrap"
    command: str | None = Field(
        default=None, pattern=_PATH, description="the bwrap or apptainer binary (default: found on PATH)"
    )
    image: str | None = Field(default=None, pattern=_PATH, description="apptainer: the image (.sif)")
    python: str | None = Field(
        default=None, pattern=_PROGRAM, description="apptainer: python inside the image"
    )
    bind: list[str] = Field(
        default_factory=list,
        description="more folders the sandbox may read (a CUDA toolkit, a conda tree outside the venv)",
    )
    unconfined_modes: list[UnrankedMode] = Field(
        default_factory=list,
        description="kind none only: the run modes the admin lets run unconfined (leaderboard never)",
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data

    @field_validator("bind")
    @classmethod
    def _absolute(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(_PATH, value) or value in ("/", "/home", "/root") or ".." in value.split("/"):
                raise ValueError(f"{value!r}: bind names absolute folders such as /opt/cuda (not / or homes)")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> IsolationConfig:
        if self.kind == "apptainer" and not self.image:
            raise ValueError("isolation kind apptainer needs image: the .sif holding python and torch")
        if self.kind != "none" and self.unconfined_modes:
            raise ValueError("unconfined_modes is for kind: none only")
        return self

    def runner_args(self) -> tuple[str, ...]:
        """The runner's options in the job script (harness.runner.parse_args reads them)."""
        args = ["--isolation", self.kind]
        for option, value in (("--isolation-command", self.command), ("--image", self.image)):
            if value:
                args += [option, value]
        if self.python:
            args += ["--python", self.python]
        for path in self.bind:
            args += ["--bind", path]
        return tuple(args)

    @property
    def confined(self) -> bool:
        return self.kind != "none"

    def takes(self, mode: str) -> bool:
        """Whether this site's isolation lets it run ``mode`` at all (verification aside)."""
        return self.kind != "none" or mode in self.unconfined_modes

    def digest(self) -> str:
        """What a verification proved: the same sandbox settings (a changed YAML needs a new check)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


# submit_via: pyslurm was accepted once; a site file that still says so is told why it went.
PYSLURM_GONE = (
    "pyslurm is not supported: use ssh, or local when the gateway runs on the login node (the same Slurm "
    "commands, run as subprocesses). pyslurm works only with the Slurm release it was made for, and PyPI "
    "has it for Slurm 17.11, 18.08 and 25.11 alone, so the gateway drives Slurm through its commands"
)


class SiteConfig(_Strict):
    name: str = Field(pattern=_NAME)
    title: str = ""
    # modal and github are fallback backends: made from the routing policy (gateway/policy.py), never
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
    python: str = Field(default="python", pattern=_PROGRAM, description="interpreter on nodes")
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
    account: str | None = Field(default=None, pattern=_NAME)
    qos: str | None = Field(default=None, pattern=_NAME)
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
