"""Where a run goes: the site and partition for a request, and the checks that decide whether it can go
there at all, on one path for ``enqueue`` (before anything is stored) and for the worker that routes the
claimed run: the named site (its best partition for the GPU type, unless an admin drained it), else the
routing policy's choice among the sites offering the GPU type (gateway/running/routing.py,
gateway/running/policy.py), each admitted only for the modes its isolation allows
(gateway/service/isolation.py)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from gateway.config.sites import SiteConfig
from gateway.core.errors import RefusedError, UserError
from gateway.core.suggest import GPU_CUTOFF, did_you_mean
from gateway.core.validation import shown
from gateway.running.policy import choose_route
from gateway.running.routing import Choice, Router, too_few_gpus
from gateway.service.intake import gpu_for_board
from gateway.service.isolation import CACHE_S, IsolationGate
from gateway.service.model import LOCAL_GPU_LABEL, SubmitRequest
from gateway.service.sitedir import SiteDirectory
from gateway.store import LeaderboardRecord, SiteHealth


@dataclass(frozen=True)
class _OpenSites:
    at: float
    generation: int  # the isolation gate's when it was worked out
    offering: list[SiteConfig]  # what it was worked out from (compared by identity)
    drained: dict[str, SiteHealth]
    open: list[SiteConfig]  # not drained
    admitted: list[SiteConfig]  # of those, the ones that take the mode
    refusals: list[str]  # why the others do not


class Placement:
    def __init__(self, sites: SiteDirectory, router: Router, isolation: IsolationGate) -> None:
        self.sites = sites
        self.router = router
        self.isolation = isolation
        self._open: dict[tuple[str, str], _OpenSites] = {}  # by (GPU type, mode)

    async def route(
        self,
        site_name: str | None,
        gpu_type: str | None,
        leaderboard: str | None = None,
        *,
        mode: str,
        gpus: int = 1,
    ) -> Choice:
        """Where a job of ``gpus`` GPUs per run goes (only to a partition whose nodes give a job that
        many): the named site (its best partition for the GPU type), else as the routing
        policy says for the leaderboard and GPU type (gateway/running/policy.py: preferred sites, then
        fallbacks), else (no site, no GPU type: None, or LOCAL_GPU_LABEL as a run records it) the
        built-in local site. A site takes only the modes its isolation allows (gateway/service/isolation.py):
        leaderboard runs only where it is verified."""
        sites = self.sites
        if gpu_type == LOCAL_GPU_LABEL:  # read here, once: callers pass a run's label as recorded
            gpu_type = None
        if site_name is None and gpu_type is None:
            await self._admit(sites.local, mode)
            return Choice(sites.local, sites.local.partitions[0], "no site or GPU type given")
        if site_name is not None:
            if site_name not in sites.names():
                # the discovered cluster by the name its routing line showed (a typo stays unknown)
                with contextlib.suppress(UserError):
                    await sites.zero_config(gpu_type)
            site = sites.site(site_name)
            await self._admit(site, mode)
            if site.kind == "local":
                return Choice(site, site.partitions[0], "the local site")
            gpu_type = self.gpu_on(site, gpu_type)
            await self.refuse_drained(site.name)
            return await self.router.choose(gpu_type, [site], gpus)
        assert gpu_type is not None
        await sites.zero_config(gpu_type)
        offering, offered = sites.offering(gpu_type)
        rule = sites.policy.rule_for(leaderboard, gpu_type)
        if (not offering and not (rule and rule.fallbacks)) or not offered:
            raise self.unknown_gpu(gpu_type)
        drained_sites = await sites.drained()
        open_sites = await self._open_sites(gpu_type, mode, offering, drained_sites)
        if offering and not open_sites.open and not (rule and rule.fallbacks):
            raise UserError(f"every site offering {gpu_type} is drained by an admin: try again later")
        fallbacks = {n: f for n, f in sites.fallbacks.items() if n not in drained_sites}
        try:
            return await choose_route(
                self.router, sites.policy, gpu_type, open_sites.admitted, fallbacks, leaderboard, gpus
            )
        except UserError as exc:
            refused = "; ".join(open_sites.refusals)
            if refused:
                raise UserError(f"{exc}; {refused}") from exc
            raise

    async def _open_sites(
        self, gpu_type: str, mode: str, offering: list[SiteConfig], drained: dict[str, SiteHealth]
    ) -> _OpenSites:
        """The sites of ``offering`` no admin drained, and those of them that take a ``mode`` run: worked out
        again when the sites or the drains change, or after the isolation verdicts' own time in the cache
        (with a hundred sites, asking each of them for every run would cost more than the claim)."""
        key, now = (gpu_type.lower(), mode), time.monotonic()
        known = self._open.get(key)
        if (
            known is not None
            and known.offering is offering  # the same objects: neither the sites nor the drains changed
            and known.drained is drained
            and known.generation == self.isolation.generation
            and now - known.at < CACHE_S
        ):
            return known
        generation = self.isolation.generation
        open_sites = [s for s in offering if s.name not in drained]
        refusals = {s.name: await self.isolation.refusal(s, mode) for s in open_sites}
        admitted = [s for s in open_sites if refusals[s.name] is None]
        refused = [r for r in refusals.values() if r is not None]
        # a verdict read or recorded while asking: keep it only until the next run asks again
        generation = generation if generation == self.isolation.generation else -1
        known = _OpenSites(now, generation, offering, drained, open_sites, admitted, refused)
        self._open[key] = known
        return known

    def gpu_type_of(self, request: SubmitRequest, board: LeaderboardRecord | None) -> str:
        """The GPU type a request runs on (its label: LOCAL_GPU_LABEL on this machine), checked against
        the sites and the leaderboard (no routing yet: the worker that claims the run picks the site and
        partition)."""
        if request.site is not None:
            site = self.sites.site(request.site)
            if site.kind == "local":
                gpu = request.gpu_type or site.partitions[0].gpu_type or LOCAL_GPU_LABEL
            else:
                gpu = self.gpu_on(site, request.gpu_type)
        elif (
            request.gpu_type is None
        ):  # a leaderboard's only GPU type (gateway.service.intake), else this machine
            gpu = LOCAL_GPU_LABEL if board is None else gpu_for_board(None, board.name, board.gpu_types)
        else:
            gpu = request.gpu_type
            if gpu not in self.sites.known_gpu_types():
                raise self.unknown_gpu(gpu)
        if board is not None and gpu not in board.gpu_types:
            ranks = ", ".join(board.gpu_types) or "no GPU type (an admin gives it some)"
            hint = did_you_mean(gpu, board.gpu_types, GPU_CUTOFF)
            raise UserError(f"leaderboard {board.name} does not rank {shown(gpu)}{hint}; it ranks {ranks}")
        return gpu

    def refuse_too_few_gpus(self, gpu_type: str, gpus: int, site_name: str | None = None) -> None:
        """UserError, before anything is stored, when no partition offering ``gpu_type`` (on the named
        site, else on any site or fallback) gives one job ``gpus`` GPUs on one node; it names the largest."""
        if gpus == 1 or gpu_type == LOCAL_GPU_LABEL:
            return
        sites = self.sites
        if site_name is not None:
            chosen = [sites.site(site_name)]
        else:
            chosen = [*sites.configured.values(), *sites.fallbacks.values()]
        offering = [(s.name, p) for s in chosen if s.kind != "local" for p in s.partitions_for(gpu_type)]
        why = too_few_gpus(gpu_type, gpus, offering)
        if why is not None:
            raise UserError(why)

    async def refuse_drained(self, site_name: str) -> None:
        """RefusedError (drained) when an admin drained the site a request names."""
        drained = (await self.sites.drained()).get(site_name)
        if drained is not None:
            raise RefusedError(
                f"site {site_name} is drained by an admin ({drained.drain_reason or 'no reason given'}): "
                "submit without --site, or later",
                "drained",
            )

    async def _admit(self, site: SiteConfig, mode: str) -> None:
        refusal = await self.isolation.refusal(site, mode)
        if refusal is not None:
            raise UserError(refusal)

    @staticmethod
    def gpu_on(site: SiteConfig, gpu_type: str | None) -> str:
        """The GPU type a run gets on a Slurm site (its first partition's when none is asked for)."""
        gpu = gpu_type or site.partitions[0].gpu_type
        if gpu is None or not site.partitions_for(gpu):
            offered = site.gpu_types()
            hint = did_you_mean(gpu, offered, GPU_CUTOFF) if gpu else ""
            raise UserError(
                f"site {site.name} has no partition with GPU type {shown(gpu or 'none')}{hint}; "
                f"it offers: {', '.join(offered) or 'none'}"
            )
        return gpu

    def unknown_gpu(self, gpu_type: str) -> UserError:
        """No site offers ``gpu_type``: say which types each site offers (and a close one, if any), and,
        on a machine with Slurm and no site, how to make one of it."""
        from gateway.config.discovery import sbatch_on_path

        sites = self.sites
        known = sites.known_gpu_types()
        by_site = [
            f"{site.name}: {', '.join(site.gpu_types()) or 'none'}"
            for site in [*sites.configured.values(), *sites.fallbacks.values()]
        ]
        where = f" ({'; '.join(by_site)})" if by_site else ""
        hint = ""
        if not sites.configured and sbatch_on_path():
            hint = (
                "; this machine has Slurm: `gateway sites init` writes its cluster as a site file (a run "
                "goes to it unasked only with no database and no fallback configured)"
            )
        return UserError(
            f"no site offers GPU type {shown(gpu_type)}{did_you_mean(gpu_type, known, GPU_CUTOFF)}; "
            f"offered: {', '.join(known)}{where}{hint}"
        )
