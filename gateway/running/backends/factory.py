"""The one place backends and transports are made from config: a Slurm site over SSH (SSHTransport) or
on this login node (LocalTransport), the built-in local site, and the Modal and GitHub Actions fallbacks
(whose SDK and HTTP clients, optional extras, are imported only when one is made). The service, the
routing policy's fallbacks and `gateway sites check` all get theirs here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.config.sites import FALLBACK_KINDS, SiteConfig
from gateway.core.errors import ConfigError
from gateway.running.backends.fallback_config import FallbackConfig, ModalConfig
from gateway.running.backends.local import LocalBackend
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.backends.warm_pool import WarmPoolBackend
from gateway.running.transport import Transport
from gateway.running.transport.local import LocalTransport
from gateway.running.transport.ssh import SSHTransport

if TYPE_CHECKING:
    from gateway.config.settings import Settings
    from gateway.running.backends.base import Backend
    from gateway.running.jobscript import TemplateRenderer


def make_transport(site: SiteConfig) -> Transport:
    """How commands reach a Slurm site: SSH to its login node, or subprocesses on this one."""
    if site.submit_via == "ssh" and site.login is not None:
        return SSHTransport(site.name, site.login)
    return LocalTransport()


def make_backend(
    site: SiteConfig,
    settings: Settings,
    renderer: TemplateRenderer,
    fallbacks: Mapping[str, FallbackConfig],
) -> Backend:
    """The backend serving ``site``; ``fallbacks`` are the routing policy's fallback backends by name
    (what a fallback site was made from)."""
    if site.kind == "local":
        return LocalBackend(settings.local_workdir, renderer)
    if site.kind in FALLBACK_KINDS:
        return _fallback_backend(site, settings, renderer, fallbacks)
    slurm = SlurmBackend(site, make_transport(site), renderer)
    # a site with a warm pool in any partition hands runs to its pools too (docs/warm-pools.md)
    return WarmPoolBackend(slurm) if any(p.warm_pool for p in site.partitions) else slurm


def _fallback_backend(
    site: SiteConfig,
    settings: Settings,
    renderer: TemplateRenderer,
    fallbacks: Mapping[str, FallbackConfig],
) -> Backend:
    config = fallbacks.get(site.name)
    if config is None:
        raise ConfigError(f"no fallback backend named {site.name!r} in the routing policy")
    if isinstance(config, ModalConfig):
        from gateway.running.backends.modal import ModalBackend, SdkModalClient

        return ModalBackend(site, config, renderer, SdkModalClient(config, settings))
    from gateway.running.backends.github import GithubApi, GithubBackend

    return GithubBackend(site, config, renderer, GithubApi(config, settings.github_token_list()))
