"""The fallback backends' configuration: what the routing policy's ``backends:`` holds for Modal and
GitHub Actions (docs/fallbacks.md). Each backend reads its own model from here, and the policy composes
them, so neither imports the other."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from gateway.config.site_parts import NAME_PATTERN, PROGRAM_PATTERN, IsolationConfig, StrictModel
from gateway.config.yamlconf import worded

# the bundle is relocatable on a fallback: its job script is rendered for the folder it runs in
FALLBACK_WORKDIR = "."


class FallbackBase(StrictModel):
    title: str = ""
    gpus: dict[str, str] = Field(
        min_length=1, description="GPU type -> Modal function name, or GitHub runner label"
    )
    timeout_s: int = Field(
        default=1800, ge=60, le=86400, description="a run's time limit there (Modal's default is 300 s)"
    )
    queue_timeout_s: int = Field(default=900, ge=10, description="waiting for a machine longer: cancelled")
    max_jobs: int = Field(default=16, ge=1, description="our runs at once per GPU type")
    preference: int = 1000
    python: str = Field(default="python3", pattern=PROGRAM_PATTERN)
    setup: list[str] = Field(default_factory=list, description="shell lines before the harness")
    isolation: IsolationConfig = Field(
        default_factory=IsolationConfig,
        description="the sandbox around submitted code on the fallback's machine, as a site's; the "
        "machine serves one run, and the sandbox keeps the submission from that run's spec and key",
    )
    poll_min_s: float = Field(default=2.0, gt=0, description="first status check after a change")
    poll_max_s: float = Field(default=30.0, gt=0, description="backoff limit between status checks")

    @field_validator("gpus")
    @classmethod
    def _gpu_names(cls, gpus: dict[str, str]) -> dict[str, str]:
        for gpu, target in gpus.items():
            if not re.match(NAME_PATTERN, gpu):
                raise ValueError(f"GPU type {gpu!r}: letters, digits, _ . - (a letter first)")
            if not re.match(r"^[A-Za-z0-9_.:-]{1,100}$", target):
                raise ValueError(f"{gpu}: {target!r} is not a function name or runner label")
        return gpus

    @field_validator("setup")
    @classmethod
    def _one_line_each(cls, values: list[str]) -> list[str]:
        if any("\n" in v or "\r" in v for v in values):
            raise ValueError("each setup entry is one line")
        return values


class ModalConfig(FallbackBase):
    """A deployed Modal app (gateway/running/backends/modal_app.py) with one function per GPU type."""

    kind: Literal["modal"]
    app: str = Field(default="kernel-gateway", pattern=NAME_PATTERN)
    environment: str | None = Field(default=None, pattern=NAME_PATTERN)
    python: str = Field(default="python", pattern=PROGRAM_PATTERN)


class GithubConfig(FallbackBase):
    """A repository with .github/workflows/gateway-run.yml and self-hosted runners labelled per GPU."""

    kind: Literal["github"]
    repository: str = Field(
        pattern=worded(
            r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", "a GitHub repository as OWNER/NAME, e.g. acme/kernels"
        )
    )
    workflow: str = Field(
        default="gateway-run.yml",
        pattern=worded(r"^[A-Za-z0-9_.-]+\.ya?ml$", "a workflow file name ending in .yml or .yaml"),
    )
    ref: str = Field(
        default="main",
        pattern=worded(r"^[A-Za-z0-9_./-]+$", "a branch or tag name (letters, digits, '_', '.', '/', '-')"),
    )
    api_url: str = Field(
        default="https://api.github.com",
        pattern=worded(r"^https?://[^\s]+$", "an http:// or https:// URL without spaces"),
    )
    artifact: str = Field(default="result", pattern=NAME_PATTERN)
    # GitHub refuses a dispatch whose inputs pass 65,535 characters
    max_bundle_chars: int = Field(default=60_000, ge=1000, le=65_000)
    # the bundle is sealed for this key (X25519, base64): the workflow holds its private key as the
    # repository secret GATEWAY_BUNDLE_KEY; `gateway fallback github-keys` makes the pair
    bundle_public_key: str | None = Field(default=None, validate_default=True)

    @field_validator("bundle_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str:
        if value is None or not value.strip():
            raise ValueError(
                "missing: the bundle (code, spec, run key) is sealed for this public key before it becomes "
                "a workflow input; make a key pair with `gateway fallback github-keys` (docs/fallbacks.md)"
            )
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise ValueError(
                "not a public key: expected 32 bytes in base64 (44 characters), as "
                "`gateway fallback github-keys` prints it"
            )
        return value.strip()

    def public_key_bytes(self) -> bytes:
        assert self.bundle_public_key is not None  # the validator refuses None
        return base64.b64decode(self.bundle_public_key)


FallbackConfig = Annotated[ModalConfig | GithubConfig, Field(discriminator="kind")]
