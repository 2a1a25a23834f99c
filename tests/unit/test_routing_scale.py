"""Routing at federation scale (bench/federation.py): a choice among a hundred sites costs what one among ten
does, and what it keeps between runs is worked out again as soon as a load, a breaker, a drain, an isolation
verdict or a site changes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.site_parts import PartitionConfig
from gateway.config.sites import SiteConfig
from gateway.running import routing
from gateway.running.backends.base import PartitionLoad
from gateway.running.routing import Router
from gateway.service.authority import Caller
from gateway.service.isolation import IsolationGate, Verdict
from gateway.service.placement import Placement
from gateway.service.sitedir import SiteDirectory
from gateway.store import IsolationCheck, SiteHealth
from tests.unit.fakes import gamma_site
from tests.unit.slurm_sim import SimulatedSlurm


def hundred_sites() -> list[SiteConfig]:
    return [SimulatedSlurm(f"site{n:03d}", ["H100", "A100"], seed=n + 1).site(100 + n) for n in range(100)]


class Probes:
    def __init__(self) -> None:
        self.sites: list[str] = []

    async def __call__(self, site: SiteConfig) -> dict[str, PartitionLoad]:
        self.sites.append(site.name)
        return {p.name: PartitionLoad(p.name, True, 0, 3) for p in site.partitions}


async def test_once_ranked_a_choice_goes_through_no_sites_partitions_and_asks_no_site(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sites, probes = hundred_sites(), Probes()
    router = Router(probes)
    assert (await router.choose("H100", sites)).site.name == "site000"
    assert sorted(probes.sites) == sorted(s.name for s in sites)  # every site's load, once
    probes.sites.clear()

    def refused(self: SiteConfig, gpu_type: str | None) -> list[PartitionConfig]:
        raise AssertionError("a ranked choice went through the sites' partitions again")

    monkeypatch.setattr(SiteConfig, "partitions_for", refused)
    for _ in range(16):  # our cap on site000's H100 partition (max_jobs 16) fills up
        choice = await router.choose("H100", sites)
        assert (choice.site.name, choice.at_cap) == ("site000", False)
        router.started(choice.site.name, choice.partition.name)
    choice = await router.choose("H100", sites)
    assert (choice.site.name, choice.at_cap) == ("site001", False)  # the next best, as before
    assert probes.sites == []


async def test_a_choice_ranks_again_when_a_site_fails_or_its_load_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sites, probes = hundred_sites(), Probes()
    router = Router(probes)
    await router.choose("H100", sites)
    probes.sites.clear()
    router.record("site000", "cannot connect")  # a job there failed: its load is read again
    assert (await router.choose("H100", sites)).site.name == "site000"
    assert probes.sites == ["site000"]
    monkeypatch.setattr(routing, "LOAD_TTL_S", 0.0)  # every load expires at once
    probes = Probes()
    router = Router(probes)
    for _ in range(2):
        await router.choose("H100", sites)
    assert len(probes.sites) == 200


class FakeStore:
    """What the isolation gate and the site directory read of the store."""

    def __init__(self) -> None:
        self.checks: dict[str, IsolationCheck] = {}
        self.health: dict[str, SiteHealth] = {}

    async def isolation_checks(self) -> dict[str, IsolationCheck]:
        return dict(self.checks)

    async def record_isolation_check(
        self, site: str, digest: str, kind: str, passed: bool, detail: str
    ) -> None:
        self.checks[site] = IsolationCheck(site, digest, kind, passed, detail, datetime.now(UTC))

    async def site_health(self) -> dict[str, SiteHealth]:
        return dict(self.health)

    async def set_drained(self, site: str, drained: bool, reason: str | None = None) -> None:
        self.health[site] = SiteHealth(site, drained, reason, 0, None, None, None)


async def test_placement_sees_a_new_isolation_verdict_and_a_drain_at_once(tmp_path: Path) -> None:
    gamma = gamma_site().model_copy(update={"preference": 200})
    delta = gamma_site().model_copy(update={"name": "delta", "preference": 10})
    store: Any = FakeStore()
    await store.record_isolation_check("gamma", gamma.isolation.digest(), "bubblewrap", True, "ok")
    await store.record_isolation_check("delta", delta.isolation.digest(), "bubblewrap", False, "escaped")
    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path, templates_dir=REPO_ROOT / "templates")
    directory = SiteDirectory(settings, {"gamma": gamma, "delta": delta}, store)
    gate = IsolationGate(store, None)
    placement = Placement(directory, Router(Probes()), gate)
    # delta's isolation failed its check: leaderboard runs go to gamma, whatever the preference
    assert (await placement.route(None, "H100", mode="leaderboard")).site.name == "gamma"
    await gate.record(delta, Verdict(True, "confined"))  # `gateway sites check delta` passed
    assert (await placement.route(None, "H100", mode="leaderboard")).site.name == "delta"
    await directory.set_drained("delta", True, "maintenance", caller=Caller("root", admin=True))
    assert (await placement.route(None, "H100", mode="leaderboard")).site.name == "gamma"


def test_the_sites_by_gpu_type_follow_a_site_changed_in_place(tmp_path: Path) -> None:
    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path, templates_dir=REPO_ROOT / "templates")
    gamma = gamma_site()
    directory = SiteDirectory(settings, {"gamma": gamma}, None)
    assert directory.offering("h100") == ([gamma], True)
    assert directory.offering("L4") == ([], False)
    l4 = PartitionConfig(name="l4", gpu_type="L4", gres="gpu:l4:1")
    directory.configured["gamma"] = gamma.model_copy(update={"partitions": [l4]})
    assert directory.offering("L4") == ([directory.configured["gamma"]], True)
    assert directory.offering("H100") == ([], False)
    assert "L4" in directory.known_gpu_types() and "H100" not in directory.known_gpu_types()
