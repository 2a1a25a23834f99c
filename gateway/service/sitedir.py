"""The site directory: every site a run may go to, and what serves each.

The configured sites (the site files), the built-in local site, the fallback sites the routing policy
makes (Modal, GitHub Actions), one runtime (backend + monitor) per site made on first use, the GPU types
they offer, which sites an admin drained, and zero-config discovery (a login node with sbatch and no site
file). The service, ``gateway render`` and ``gateway sites check`` resolve sites through it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.config.settings import Settings
from gateway.config.sites import LOCAL_SITE_NAME, SiteConfig, local_site
from gateway.core.errors import UserError
from gateway.core.suggest import did_you_mean
from gateway.core.validation import MAX_REASON_CHARS, check_text, shown
from gateway.running.backends.base import Backend
from gateway.running.backends.factory import make_backend
from gateway.running.execution import SiteRuntime
from gateway.running.jobscript import TemplateRenderer
from gateway.running.monitor import Monitor
from gateway.running.policy import RoutingPolicy
from gateway.service.authority import Caller, require_admin
from gateway.service.model import LOCAL_GPU_LABEL, require_store
from gateway.store import SiteHealth, Store

log = logging.getLogger(__name__)
HEALTH_TTL_S = 5.0  # drain states are read from the store at most this often


@dataclass(frozen=True)
class _SiteIndex:
    sites: tuple[SiteConfig, ...]  # what it was made of (held, so that the key's ids stay theirs)
    key: tuple[int, ...]
    offering: dict[str, list[SiteConfig]]  # lower-cased GPU type -> the configured sites offering it
    known: list[str]
    known_lower: frozenset[str]


class SiteDirectory:
    def __init__(
        self,
        settings: Settings,
        sites: dict[str, SiteConfig],
        store: Store | None = None,
        *,
        policy: RoutingPolicy | None = None,
        backend_factory: Callable[[SiteConfig], Backend] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.configured = sites  # the site files' sites (or the cluster zero-config discovered)
        # fallback backends (Modal, GitHub Actions) are sites of their own kind, made from the policy
        self.policy = policy or RoutingPolicy()
        self.fallbacks = self.policy.fallback_sites()
        self.local = local_site(settings.local_workdir, settings.local_isolation, settings.local_keep_bundles)
        self.renderer = TemplateRenderer(settings.templates_dir)
        self._backend_factory = backend_factory or self.default_backend
        self._runtimes: dict[str, SiteRuntime] = {}
        self._health: tuple[float, dict[str, SiteHealth]] = (0.0, {})
        self._drained: dict[str, SiteHealth] = {}
        self._discovery = asyncio.Lock()
        self._site_index: _SiteIndex | None = None

    def names(self) -> list[str]:
        return [LOCAL_SITE_NAME, *self.configured, *self.fallbacks]

    def site(self, name: str | None) -> SiteConfig:
        if name is None or name == LOCAL_SITE_NAME:
            return self.local
        if name in self.fallbacks:
            return self.fallbacks[name]
        if name not in self.configured:
            known = sorted(self.names())
            raise UserError(
                f"unknown site {shown(name)}{did_you_mean(name, known)}; known sites: {', '.join(known)}"
            )
        return self.configured[name]

    def default_backend(self, site: SiteConfig) -> Backend:
        return make_backend(site, self.settings, self.renderer, self.policy.backends)

    def runtime(self, site: SiteConfig) -> SiteRuntime:
        """One backend (so one SSH connection) and one monitor per site, made on first use."""
        runtime = self._runtimes.get(site.name)
        if runtime is None:
            backend = self._backend_factory(site)
            # one query per round whatever the number of jobs: a local process is cheap to ask about; a
            # Slurm site gets one squeue every 0.2 s after a change, backing off to one a second (each
            # costs the controller about 4 ms), and none while it has no job of ours. Results are pushed
            # over the output stream, so this is the safety net, not the fast path.
            interval = (0.05, 0.5) if site.kind == "local" else (0.2, 1.0)
            monitor = Monitor(backend, min_interval_s=interval[0], max_interval_s=interval[1])
            runtime = self._runtimes[site.name] = SiteRuntime(backend, monitor)
        return runtime

    def backend_for(self, site_name: str | None) -> Backend:
        """The backend serving a site (made on first use); one per site, so one SSH connection."""
        return self.runtime(self.site(site_name)).backend

    def known_gpu_types(self) -> list[str]:
        return list(self._index().known)

    def offering(self, gpu_type: str) -> tuple[list[SiteConfig], bool]:
        """The configured sites with a partition of ``gpu_type`` (any case), in the files' order (the same
        list while the sites stay the same), and whether a site, a fallback or this machine offers it."""
        index, gpu = self._index(), gpu_type.lower()
        return index.offering.get(gpu, []), gpu in index.known_lower

    def _index(self) -> _SiteIndex:
        """The sites by GPU type, worked out again only when a site changed (routing asks for every run:
        with a hundred sites, going through their partitions each time would cost more than the claim)."""
        key = tuple(map(id, self.configured.values()))  # the fallbacks are the policy's, made once
        if self._site_index is None or self._site_index.key != key:
            sites = (*self.configured.values(), *self.fallbacks.values())
            offering: dict[str, list[SiteConfig]] = {}
            for site in self.configured.values():
                for gpu in dict.fromkeys((p.gpu_type or "").lower() for p in site.partitions):
                    offering.setdefault(gpu, []).append(site)
            known = sorted({gpu for site in sites for gpu in site.gpu_types()} | {LOCAL_GPU_LABEL})
            lower = frozenset(gpu.lower() for gpu in known)
            self._site_index = _SiteIndex(sites, key, offering, known, lower)
        return self._site_index

    async def close(self) -> None:
        for runtime in self._runtimes.values():
            await runtime.monitor.close()
            await runtime.backend.close()
        self._runtimes.clear()

    # -- drain and health -----------------------------------------------------------------------------

    async def drained(self) -> dict[str, SiteHealth]:
        """Sites an admin drained (read from the store at most every few seconds): the same dict until it is
        read again, so that routing may keep what it worked out from it (not to be changed)."""
        if self.store is None:
            return self._drained
        at, _ = self._health
        if time.monotonic() - at > HEALTH_TTL_S:
            health = await self.store.site_health()
            self._health = (time.monotonic(), health)
            self._drained = {name: h for name, h in health.items() if h.drained}
        return self._drained

    async def health(self) -> dict[str, SiteHealth]:
        return await require_store(self.store).site_health()

    async def set_drained(
        self, site: str, drained: bool, reason: str | None = None, *, caller: Caller
    ) -> None:
        """Drain a site (routing skips it; its running jobs go on) or open it again."""
        require_admin(caller, "draining sites is for the gateway's admins")
        if self.site(site).kind == "local":
            raise UserError("the built-in local site cannot be drained")
        if reason is not None:
            check_text("the reason", reason, MAX_REASON_CHARS)
        await require_store(self.store).set_drained(site, drained, reason)
        self._health = (0.0, {})

    # -- zero-config ----------------------------------------------------------------------------------

    async def zero_config(self, gpu_type: str | None) -> None:
        """Nothing configured (no site, no fallback, no database) and sbatch on the PATH: this is a login
        node, so a GPU run goes to its own cluster, read from Slurm (gateway/config/discovery.py) as a site
        like any other, not to this machine. Ad-hoc runs only: a run recorded in a database may be taken over
        or cleaned up by another process, which must find its site in the site files."""
        from gateway.config.discovery import discover, sbatch_on_path

        async with self._discovery:  # one discovery however many runs route at once
            if self.store is not None or self.configured or self.fallbacks or not sbatch_on_path():
                return
            found = await discover(self.settings.local_isolation)
            if gpu_type is not None:
                found.check_offers(gpu_type)
            log.info("no site configured: submitting to cluster %s through the local sbatch", found.cluster)
            self.configured = {found.site.name: found.site}
