"""Which runs a site may take, by how it confines submitted code (its YAML's ``isolation:``).

- A site with ``isolation: none`` takes only the modes its admin lists in ``unconfined_modes``.
- A confined Slurm site takes leaderboard runs only when its isolation is verified: the last isolation
  probe (gateway/sitecheck/isolation.py, run by `gateway sites check` or here, once, when a leaderboard
  run first needs the site) passed for the site's current isolation settings. A failed probe is tried
  again after ``RETRY_FAILED_S``, or at once by `gateway sites check`.
- Other modes run confined without the proof; the local site and the fallbacks (a fresh machine per run)
  need none. Nor does a gateway without a database (`gateway submit --no-db`, a login node's zero-config
  run): nothing it runs is ranked, so a leaderboard-mode run there is the operator's own benchmark.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.config.sites import SiteConfig
from gateway.store import IsolationCheck, Store

log = logging.getLogger(__name__)
CACHE_S = 5.0
RETRY_FAILED_S = 600.0


@dataclass(frozen=True)
class Verdict:
    passed: bool
    detail: str


# Runs the isolation probe on a site: (passed, what it found).
Verifier = Callable[[SiteConfig], Awaitable[Verdict]]


class IsolationGate:
    def __init__(self, store: Store | None, verifier: Verifier | None) -> None:
        self._store = store
        self._verifier = verifier
        self._checks: tuple[float, dict[str, IsolationCheck]] = (0.0, {})
        self._locks: dict[str, asyncio.Lock] = {}
        self.generation = 0  # moves when a verdict may have changed (callers keep refusals until it does)

    async def refusal(self, site: SiteConfig, mode: str) -> str | None:
        """None when ``site`` may take a ``mode`` run, else why not (for the user and the route's reason)."""
        isolation = site.isolation
        if not isolation.takes(mode):
            allowed = ", ".join(isolation.unconfined_modes) or "no mode"
            return (
                f"site {site.name} runs submitted code unconfined (isolation: none), and its admin allows "
                f"only {allowed} there"
            )
        if mode != "leaderboard" or site.kind != "slurm" or not isolation.confined or self._store is None:
            return None
        verdict = await self._verdict(site)
        if verdict.passed:
            return None
        return (
            f"site {site.name} takes no leaderboard runs until its isolation ({isolation.kind}) is verified: "
            f"{verdict.detail}; its admin runs `gateway sites check {site.name}`"
        )

    async def record(self, site: SiteConfig, verdict: Verdict) -> None:
        """Keep a probe's outcome (from `gateway sites check` or from here) for every gateway process; without
        a database there is nowhere to keep it, and nothing ranked that needs it."""
        if self._store is not None:
            await self._store.record_isolation_check(
                site.name, site.isolation.digest(), site.isolation.kind, verdict.passed, verdict.detail
            )
            self._checks = (0.0, {})
            self.generation += 1

    async def _verdict(self, site: SiteConfig) -> Verdict:
        known = await self._known(site)
        if known is not None:
            return known
        lock = self._locks.setdefault(site.name, asyncio.Lock())
        async with lock:  # one probe per site however many runs wait for it
            known = await self._known(site, fresh=True)
            if known is not None:
                return known
            if self._verifier is None:
                return Verdict(False, "never checked")
            log.info("site %s: verifying its isolation before its first leaderboard run", site.name)
            verdict = await self._verifier(site)
            await self.record(site, verdict)
            return verdict

    async def _known(self, site: SiteConfig, fresh: bool = False) -> Verdict | None:
        """The recorded verdict for the site's current settings, unless there is none or it is a failure
        old enough to try again."""
        if self._store is None:
            return None
        at, checks = self._checks
        if fresh or time.monotonic() - at > CACHE_S:
            checks = await self._store.isolation_checks()
            self._checks = (time.monotonic(), checks)
            self.generation += 1
        check = checks.get(site.name)
        if check is None or check.digest != site.isolation.digest():
            return None
        if check.passed:
            return Verdict(True, check.detail)
        age = time.time() - check.checked_at.timestamp()
        return None if age > RETRY_FAILED_S else Verdict(False, f"its last check failed: {check.detail}")
