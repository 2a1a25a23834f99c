"""The parts of a site's YAML (gateway/config/sites.py holds the site itself): how to log in (pinned host
keys, an optional jump host), the GPU partitions with their gres and limits, where the Slurm commands are,
which ends of a job are requeued, profile mode, and the sandbox around submitted code on the nodes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config.cluster_info import parse_time_s, scale_gres
from gateway.config.yamlconf import worded
from gateway.core.modes import UnrankedMode
from gateway.core.states import JobState

# Names end up in Slurm job names, paths and directives: keep them to a shell-safe alphabet.
NAME_PATTERN = worded(
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
PROGRAM_PATTERN = worded(
    r"^[A-Za-z0-9_./+-]+$", "a program name or path such as python3 or /opt/venv/bin/python (no spaces)"
)
_TIME_LIMIT = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$")
# `--constraint=a100_80g`, `--exclusive`: one option, no spaces, no shell or sbatch metacharacters
_DIRECTIVE = r"^--[a-z][a-z0-9-]*(=[A-Za-z0-9_:,.@%/+=|&!*-]+)?$"
_SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "sacctmgr")
# A job that ended in one of these did not fail because of the submission: run it again (once by default).
DEFAULT_REQUEUE_ON = (JobState.NODE_FAIL, JobState.PREEMPTED, JobState.BOOT_FAIL)


def slurm_time(value: str) -> str:
    """A Slurm time as sbatch takes it (``10``, ``00:10:00``, ``1-00:00:00``), or what to write instead."""
    if not _TIME_LIMIT.match(value):
        raise ValueError("expected a Slurm time such as 10, 00:10:00 or 1-00:00:00")
    return value


def seconds_of(value: str) -> int:
    """Seconds in a Slurm time that :func:`slurm_time` accepted."""
    seconds = parse_time_s(value)
    assert seconds is not None
    return seconds


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JumpHostConfig(StrictModel):
    """A bastion to pass through (asyncssh tunnels the site's connection over it)."""

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(pattern=_LOGIN_USER)
    identity_file: Path | None = Field(default=None, description="default: the site's identity_file")


class LoginConfig(StrictModel):
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


class WarmPoolConfig(StrictModel):
    """Long-lived pool jobs in a partition (pilot jobs): each runs the harness's pool runner, which takes
    runs one at a time with Python, the harness and torch already imported (docs/warm-pools.md)."""

    max_jobs: int = Field(
        ge=1, le=256, description="pool jobs at once in this partition, every worker together"
    )
    idle_s: float = Field(
        default=120.0, ge=5, le=86400, description="a pool with no run this long ends itself"
    )
    max_lifetime: str = Field(
        default="01:00:00", description="a pool takes no new run after this (Slurm time)"
    )

    @field_validator("max_lifetime")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        return slurm_time(value)

    @property
    def max_lifetime_s(self) -> int:
        return seconds_of(self.max_lifetime)


class PartitionConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    gpu_type: str | None = Field(default=None, pattern=NAME_PATTERN)
    gres: str | None = Field(default=None, pattern=_GRES)
    time_limit: str = "00:10:00"
    cpus_per_gpu: int = Field(default=1, ge=1)
    mem_per_gpu: str | None = Field(default=None, pattern=_MEMORY)
    max_jobs: int = Field(default=16, ge=1, description="concurrency cap: our jobs at once here")
    gpus_per_node: int = Field(
        default=1,
        ge=1,
        le=64,
        description="GPUs one node of this partition gives one job: a task needing more never goes here",
    )
    directives: list[str] = Field(
        default_factory=list, description="extra #SBATCH options, e.g. --constraint=a100_80g"
    )
    warm_pool: WarmPoolConfig | None = Field(
        default=None, description="keep warm pool jobs here (opt-in): runs start in well under a second"
    )

    @field_validator("time_limit")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        return slurm_time(value)

    @field_validator("directives")
    @classmethod
    def _directives(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(_DIRECTIVE, value):
                raise ValueError(
                    f"{value!r} is not one sbatch option such as --constraint=a100 (no spaces or quotes)"
                )
        return values

    @model_validator(mode="after")
    def _pool_within_cap(self) -> PartitionConfig:
        pool = self.warm_pool
        if pool is not None and pool.max_jobs > self.max_jobs:
            raise ValueError(
                f"warm_pool.max_jobs ({pool.max_jobs}) is over the partition's max_jobs "
                f"({self.max_jobs}): pool jobs count against it"
            )
        if pool is not None and pool.max_lifetime_s <= self.time_limit_s:
            raise ValueError(
                f"warm_pool.max_lifetime ({pool.max_lifetime}) must be longer than the partition's "
                f"time_limit ({self.time_limit}): a pool job lives that long and takes a run only while one "
                "more run's time limit still fits (and must fit the partition's own MaxTime)"
            )
        return self

    @property
    def time_limit_s(self) -> int:
        return seconds_of(self.time_limit)

    def fits(self, gpus: int) -> bool:
        """Whether one node here gives a run ``gpus`` GPUs."""
        return gpus <= self.gpus_per_node

    def job_resources(self, gpus: int) -> JobResources:
        """What a job of ``gpus`` GPUs asks Slurm for here: the gres with that count, and CPUs and memory
        per GPU times ``gpus`` (all on one node: the harness starts the ranks itself)."""
        return JobResources(
            gres=scale_gres(self.gres, gpus),
            cpus=self.cpus_per_gpu * gpus,
            mem=_times(self.mem_per_gpu, gpus) if self.mem_per_gpu else None,
        )


class JobResources(StrictModel):
    gres: str | None
    cpus: int
    mem: str | None


def _times(memory: str, factor: int) -> str:
    """A Slurm memory size (``8G``) times ``factor``, in the same unit."""
    digits = memory.rstrip("KMGT")
    return f"{int(digits) * factor}{memory[len(digits) :]}"


class SlurmCommands(StrictModel):
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


class RequeuePolicy(StrictModel):
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


class ProfileConfig(StrictModel):
    """Profile mode on this site: the profiler's tables always; Nsight Compute's report when ``ncu`` is on
    and the nodes have ``ncu`` on the job's PATH (harness/ncu.py)."""

    ncu: bool = Field(
        default=False,
        description="run profile mode's benchmarks under Nsight Compute (ncu) too and return its report; "
        "the nodes' driver must let users read the GPU's performance counters",
    )


ISOLATION_KINDS = ("bubblewrap", "apptainer", "none")
_PATH = worded(r"^/[A-Za-z0-9_./+@-]*$", "an absolute path such as /usr/bin/bwrap (no spaces or quotes)")


class IsolationConfig(StrictModel):
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
        default=None, pattern=PROGRAM_PATTERN, description="apptainer: python inside the image"
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
