"""Routing: for a GPU type, choose among the configured sites and partitions.

Candidates are ordered by health (a circuit breaker opens after repeated failures), partition state (up,
with a node that can take jobs), our own concurrency cap per partition, queue depth (a partition where
the job can start now beats one with a queue) and the sites' preference order. Each site's load comes
from one sinfo and one squeue, cached for a few seconds.

A choice costs the same however many sites there are (bench/federation.py): the candidates for a GPU type
among given sites are worked out once, and their ranking once per change of the loads or the breakers;
a run then takes the first ranked partition where our cap is not reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.config.site_parts import PartitionConfig
from gateway.config.sites import SiteConfig
from gateway.core.errors import GatewayError, UserError
from gateway.core.suggest import GPU_CUTOFF, did_you_mean
from gateway.running.backends.base import PartitionLoad

log = logging.getLogger(__name__)
LoadProbe = Callable[[SiteConfig], Awaitable[dict[str, PartitionLoad]]]
# The (site, partition) pairs with a free warm pool for runs of this many GPUs (docs/warm-pools.md)
WarmProbe = Callable[[int], Awaitable[set[tuple[str, str]]]]
LOAD_TTL_S = 5.0
LOAD_TIMEOUT_S = 10.0
CACHED_CHOICES = 256  # (GPU type, GPUs, sites) whose candidates and ranking are kept


@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; lets one try through after ``cooldown_s``."""

    threshold: int = 3
    cooldown_s: float = 60.0
    failures: int = 0
    opened_at: float | None = None
    last_error: str | None = None

    def allows(self, now: float) -> bool:
        return self.opened_at is None or now - self.opened_at >= self.cooldown_s

    def success(self) -> None:
        self.failures, self.opened_at, self.last_error = 0, None, None

    def failure(self, error: str, now: float) -> None:
        self.failures += 1
        self.last_error = error
        if self.failures >= self.threshold:
            self.opened_at = now

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


@dataclass
class _Cached:
    at: float
    load: dict[str, PartitionLoad]


@dataclass(frozen=True)
class _Offer:
    """What only the sites' configuration decides of a choice among them."""

    sites: list[SiteConfig]  # as given (held, so the cache key's ids stay theirs)
    fitting: list[SiteConfig]  # those with a partition that fits, in the given order
    candidates: list[tuple[SiteConfig, PartitionConfig]]
    pooled: bool = False  # a candidate partition keeps warm pools: whether one is free is asked per choice


@dataclass(frozen=True)
class _Ranking:
    """The candidates ranked by their loads (best first, our cap aside), and why the others cannot run."""

    epoch: int  # the router's epoch it was ranked in
    until: float  # when the first of its loads expires
    ranked: list[tuple[SiteConfig, PartitionConfig, PartitionLoad]]
    refused: list[str]


@dataclass(frozen=True)
class Choice:
    site: SiteConfig
    partition: PartitionConfig
    why: str
    at_cap: bool = False  # our own max_jobs are running in the partition (the routing policy may go on)
    pending: int = 0  # jobs of anyone waiting in the partition


@dataclass
class Router:
    probe: LoadProbe
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    ours: dict[tuple[str, str], int] = field(default_factory=dict)  # our live jobs per (site, partition)
    warm: WarmProbe | None = None  # asked only when a candidate partition keeps a warm pool
    _cache: dict[str, _Cached] = field(default_factory=dict)
    # candidates and rankings by (GPU type, GPUs, the sites' ids); a ranking holds until the epoch moves
    # (a load read anew, a site failing or recovering) or one of its loads expires
    _offers: dict[tuple[str, int, tuple[int, ...]], _Offer] = field(default_factory=dict)
    _rankings: dict[tuple[str, int, tuple[int, ...]], _Ranking] = field(default_factory=dict)
    _epoch: int = 0

    def breaker(self, site: str) -> CircuitBreaker:
        return self.breakers.setdefault(site, CircuitBreaker())

    def record(self, site: str, error: str | None) -> None:
        breaker = self.breaker(site)
        if error is None:
            if breaker.failures:
                self._epoch += 1  # it recovered: rank it again
            breaker.success()
        else:
            breaker.failure(error, time.monotonic())
            self._epoch += 1
            self._cache.pop(site, None)  # its cached load is stale: the next choice probes it again
            if breaker.is_open:
                log.warning("site %s: circuit open after %d failures: %s", site, breaker.failures, error)

    def started(self, site: str, partition: str) -> None:
        self.ours[(site, partition)] = self.ours.get((site, partition), 0) + 1

    def finished(self, site: str, partition: str) -> None:
        self.ours[(site, partition)] = max(0, self.ours.get((site, partition), 0) - 1)

    async def _load(self, site: SiteConfig) -> dict[str, PartitionLoad] | None:
        now = time.monotonic()
        cached = self._cache.get(site.name)
        if cached is not None and now - cached.at < LOAD_TTL_S:
            return cached.load
        try:
            load = await asyncio.wait_for(self.probe(site), LOAD_TIMEOUT_S)
        except (GatewayError, TimeoutError) as exc:
            self.record(site.name, f"cannot read partition state: {exc}")
            return None
        self.record(site.name, None)
        self._cache[site.name] = _Cached(now, load)
        self._epoch += 1
        return load

    def forget_loads(self) -> None:
        """Drop every cached load: the next choice reads each site's load anew."""
        self._cache.clear()
        self._epoch += 1

    async def choose(self, gpu_type: str, sites: list[SiteConfig], gpus: int = 1) -> Choice:
        """The best partition for a run of ``gpus`` GPUs of ``gpu_type`` among ``sites``: only partitions
        whose nodes give a job that many GPUs (``gpus_per_node``) are candidates."""
        key = (gpu_type, gpus, tuple(map(id, sites)))
        offer = self._offers.get(key) or self._offer(key, sites)
        now = time.monotonic()
        ranking = self._rankings.get(key)
        if ranking is None or ranking.epoch != self._epoch or now >= ranking.until:
            ranking = await self._rank(key, offer, now)
        # the first ranked partition where our cap is not reached, else the best one (the policy may go on);
        # a free warm pool before any of them (its run starts at once): asked per choice, never cached
        under_cap = [r for r in ranking.ranked if self.ours.get((r[0].name, r[1].name), 0) < r[1].max_jobs]
        warm = await self.warm(gpus) if offer.pooled and self.warm is not None and under_cap else set()
        best = next((r for r in under_cap if (r[0].name, r[1].name) in warm), None) or next(
            iter(under_cap), None
        )
        if best is None and not ranking.ranked:
            raise UserError(f"no site can run a {gpu_type} job now: " + "; ".join(ranking.refused))
        site, part, load = best or ranking.ranked[0]
        why = f"{load.pending} pending, {load.running} running, preference {site.preference}"
        if (site.name, part.name) in warm:
            why = f"a free warm pool; {why}"
        return Choice(site, part, why, best is None, load.pending)

    def _offer(self, key: tuple[str, int, tuple[int, ...]], sites: list[SiteConfig]) -> _Offer:
        gpu_type, gpus, _ = key
        offering = [(s, p) for s in sites for p in s.partitions_for(gpu_type)]
        if not offering:
            offered = sorted({gpu for site in sites for gpu in site.gpu_types()})
            raise UserError(
                f"no site offers GPU type {gpu_type!r}{did_you_mean(gpu_type, offered, GPU_CUTOFF)}; "
                f"offered: {', '.join(offered) or 'none'}"
            )
        too_small = too_few_gpus(gpu_type, gpus, [(s.name, p) for s, p in offering])
        if too_small is not None:
            raise UserError(too_small)
        candidates = [(s, p) for s, p in offering if p.fits(gpus)]
        fitting = {s.name for s, _ in candidates}
        if len(self._offers) > CACHED_CHOICES:  # site sets come and go with admins' edits: keep a few
            self._offers.clear()
        pooled = any(p.warm_pool is not None for _, p in candidates)
        fitting_sites = [s for s in sites if s.name in fitting]
        offer = self._offers[key] = _Offer(list(sites), fitting_sites, candidates, pooled)
        return offer

    async def _rank(self, key: tuple[str, int, tuple[int, ...]], offer: _Offer, now: float) -> _Ranking:
        """Rank the candidates by their sites' loads (only the expired ones are read again)."""
        healthy = [s for s in offer.fitting if self.breaker(s.name).allows(now)]
        stale = [s for s in healthy if (c := self._cache.get(s.name)) is None or now - c.at >= LOAD_TTL_S]
        await asyncio.gather(*(self._load(s) for s in stale))
        cached = {s.name: c for s in healthy if (c := self._cache.get(s.name)) is not None}
        ranked: list[tuple[tuple[int, int, int, int], SiteConfig, PartitionConfig, PartitionLoad]] = []
        refused: list[str] = []
        for site, part in offer.candidates:
            site_load = cached.get(site.name)
            if site_load is None:
                breaker = self.breaker(site.name)
                refused.append(f"{site.name}: unhealthy ({breaker.last_error or 'circuit open'})")
                continue
            load = site_load.load.get(part.name)
            if load is None or not load.available:
                refused.append(f"{site.name}/{part.name}: {load.state if load else 'not found'}")
                continue
            ranked.append(
                ((int(load.pending > 0), site.preference, load.pending, load.running), site, part, load)
            )
        ranked.sort(key=lambda item: item[0])
        until = min((c.at for c in cached.values()), default=now) + LOAD_TTL_S
        ranking = _Ranking(self._epoch, until, [(s, p, load) for _, s, p, load in ranked], refused)
        # a site left out (circuit open, no answer) may come back on its own clock: rank again next time
        if len(cached) == len(offer.fitting):
            if len(self._rankings) > CACHED_CHOICES:
                self._rankings.clear()
            self._rankings[key] = ranking
        return ranking


def too_few_gpus(gpu_type: str, gpus: int, offering: list[tuple[str, PartitionConfig]]) -> str | None:
    """Why no partition of ``offering`` (site name, partition) can run a task of ``gpus`` GPUs per run
    (None when one can): the largest one named, with how many GPUs its nodes give a job."""
    if not offering or any(part.fits(gpus) for _, part in offering):
        return None
    site, part = max(offering, key=lambda item: item[1].gpus_per_node)
    return (
        f"the task needs {gpus} GPUs per run (on one node); the largest {gpu_type} partition offers "
        f"{part.gpus_per_node} per node ({site}/{part.name})"
    )
