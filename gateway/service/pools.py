"""Warm pools (docs/warm-pools.md): which pool a run goes to; pool jobs started when a run wanted one and
none was free (within the partition's cap, every worker together: the store reserves each pool before its
sbatch), followed until they are ready and until they end; each pool run's GPU time.

A pool is started only for a run that found none free, and ends itself after its ``idle_s`` without work,
so pools never hold GPUs the queue does not need. The run that started one runs as a job of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

from gateway.config.site_parts import PartitionConfig
from gateway.config.sites import SiteConfig
from gateway.core.errors import GatewayError
from gateway.running.backends.base import PoolSlot
from gateway.running.backends.warm_pool import POOL_ENDED_LINE, POOL_READY_LINE, WarmPoolBackend, new_pool_id
from gateway.running.execution import RunReport
from gateway.service.sitedir import SiteDirectory
from gateway.store import PoolRecord, Store
from harness.protocol import PROGRESS_PREFIX

log = logging.getLogger(__name__)
SWEEP_S = 5.0  # how often a worker checks every live pool's job (one squeue per site)
# A reservation whose worker died before its sbatch answered: after this long it is given up (a pool job
# that did start has no run to take and ends itself after its idle time).
UNSUBMITTED_S = 120.0


class WarmPools:
    def __init__(self, store: Store | None, sites: SiteDirectory) -> None:
        self.store = store
        self.sites = sites
        self._tasks: set[asyncio.Task[object]] = set()
        self._followed: set[str] = set()

    def backend(self, site: SiteConfig) -> WarmPoolBackend | None:
        backend = self.sites.runtime(site).backend
        return backend if isinstance(backend, WarmPoolBackend) else None

    async def take(
        self, site: SiteConfig, partition: PartitionConfig, run_id: str, gpus: int
    ) -> PoolSlot | None:
        """A free ready pool of this partition for the run, now the run's; None (and one more pool
        started, if the cap allows) when there is none."""
        if self.store is None or partition.warm_pool is None or self.backend(site) is None:
            return None
        try:
            record = await self.store.take_pool(site.name, partition.name, gpus, run_id)
        except GatewayError as exc:  # a pool is a speed-up: without one the run goes as a job of its own
            log.warning("run %s: no warm pool taken: %s", run_id, exc)
            return None
        if record is not None and record.job_id is not None:
            return PoolSlot(record.id, record.job_id)
        self._spawn(self.grow(site, partition, gpus))
        return None

    async def free_partitions(self, gpus: int) -> set[tuple[str, str]]:
        """Where a run of ``gpus`` GPUs would find a free pool now (routing prefers those)."""
        if self.store is None:
            return set()
        try:
            return await self.store.free_pool_partitions(gpus)
        except GatewayError as exc:
            log.warning("free warm pools unknown: %s", exc)
            return set()

    async def grow(self, site: SiteConfig, partition: PartitionConfig, gpus: int) -> str | None:
        """Start one more pool job in ``partition`` unless its cap is reached: the new pool's id."""
        store, backend, pool = self.store, self.backend(site), partition.warm_pool
        if store is None or backend is None or pool is None:
            return None
        pool_id = new_pool_id()
        if not await store.reserve_pool(pool_id, site.name, partition.name, gpus, pool.max_jobs):
            return None
        try:
            job_id = await backend.start_pool(pool_id, partition, gpus)
        except GatewayError as exc:
            log.warning("site %s: warm pool %s not started: %s", site.name, pool_id, exc)
            await store.end_pool(pool_id, f"not started: {exc}")
            return None
        await store.pool_submitted(pool_id, job_id)
        log.info("site %s: warm pool %s started as job %s in %s", site.name, pool_id, job_id, partition.name)
        self._spawn(self._follow(site, pool_id))
        return pool_id

    async def release(self, slot: PoolSlot, report: RunReport) -> None:
        """The run ended and is recorded: its pool is free, and the run's GPU time is its time there."""
        if self.store is None:
            return
        backend = self.backend(self.sites.site(report.site))
        seconds = None
        if backend is not None and report.handle is not None:
            try:
                times = await backend.run_times(report.handle)
                seconds = times.seconds if times is not None else None
            except GatewayError as exc:
                log.warning("run %s: its time in pool %s is unknown: %s", report.run_id, slot.pool_id, exc)
        await self.store.release_pool(slot.pool_id, report.run_id, seconds)

    async def sweep(self) -> None:
        """Every live pool checked against Slurm (one squeue per site): pools whose job ended are marked
        so and their folders removed; starting pools whose runner said it is ready become ready."""
        if self.store is None:
            return
        by_site: dict[str, list[PoolRecord]] = defaultdict(list)
        for record in await self.store.live_pools():
            by_site[record.site].append(record)
        for site_name, records in by_site.items():
            try:
                await self._sweep_site(self.sites.site(site_name), records)
            except GatewayError as exc:
                log.warning("site %s: warm pools not checked: %s", site_name, exc)

    async def _sweep_site(self, site: SiteConfig, records: list[PoolRecord]) -> None:
        store, backend = self.store, self.backend(site)
        if store is None or backend is None:
            return
        now = time.time()
        for record in records:
            if record.job_id is None and now - record.created_at.timestamp() > UNSUBMITTED_S:
                await store.end_pool(record.id, "its sbatch never answered")
        states = await backend.pool_states({r.id: r.job_id for r in records if r.job_id is not None})
        ended = [pool for pool, status in states.items() if status.state.is_terminal]
        for pool in ended:
            await store.end_pool(pool, f"its job ended: {states[pool].state.value}")
        await backend.remove_pools(ended)
        starting = [r.id for r in records if r.state == "starting" and r.job_id and r.id not in ended]
        for pool in await backend.ready_pools(starting):
            await store.pool_ready(pool)

    async def _follow(self, site: SiteConfig, pool_id: str) -> None:
        """The pool's own output, pushed: ready the moment its runner says so; ended likewise (the sweep
        catches what a broken stream misses)."""
        store, backend = self.store, self.backend(site)
        if store is None or backend is None or pool_id in self._followed:
            return
        self._followed.add(pool_id)
        try:
            workdir = await backend.slurm.prepared_workdir()
            async with contextlib.aclosing(backend.pool_output(pool_id, workdir)) as lines:
                async for line in lines:
                    if line.startswith(POOL_READY_LINE):
                        await store.pool_ready(pool_id)
                    elif line.startswith(POOL_ENDED_LINE):
                        await store.end_pool(pool_id, line[len(PROGRESS_PREFIX) :])
                        await backend.remove_pools([pool_id])
                        return
        except GatewayError as exc:
            log.info("site %s: pool %s no longer followed (%s); the sweep checks it", site.name, pool_id, exc)
        finally:
            self._followed.discard(pool_id)

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop following pools; the pools go on (another worker may use them) and end when idle."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
