"""Routing: a site that keeps failing is skipped until its circuit lets a try through again."""

from __future__ import annotations

import pytest

from gateway.config.sites import SiteConfig
from gateway.core.errors import TransportError, UserError
from gateway.running.backends.base import PartitionLoad
from gateway.running.routing import CircuitBreaker, Router
from tests.unit.fakes import gamma_site


def test_the_breaker_opens_after_repeated_failures_and_lets_one_try_after_the_cooldown() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=60)
    for second in range(2):
        breaker.failure("refused", float(second))
    assert breaker.allows(2.0) and not breaker.is_open
    breaker.failure("refused", 2.0)
    assert breaker.is_open and not breaker.allows(61.9) and breaker.allows(62.0)
    breaker.success()
    assert not breaker.is_open and breaker.failures == 0


async def test_an_unreachable_site_is_routed_around_and_named_when_none_is_left() -> None:
    up, down = gamma_site(name="h100"), gamma_site(name="h100").model_copy(update={"name": "delta"})
    probes: list[str] = []

    async def probe(site: SiteConfig) -> dict[str, PartitionLoad]:
        probes.append(site.name)
        if site.name == "delta":
            raise TransportError("cannot connect: connection refused")
        return {"h100": PartitionLoad("h100", True, 0, 0)}

    router = Router(probe)
    for _ in range(3):
        router.forget_loads()
        assert (await router.choose("H100", [up, down])).site.name == "gamma"
    assert router.breaker("delta").is_open
    probes.clear()
    router.forget_loads()
    await router.choose("H100", [up, down])
    assert probes == ["gamma"]  # an open circuit is not even asked
    with pytest.raises(UserError, match=r"delta: unhealthy.*connection refused"):
        await router.choose("H100", [down])


async def test_our_concurrency_cap_sends_work_elsewhere() -> None:
    capped = gamma_site(name="h100", max_jobs=1)
    other = gamma_site(name="h100").model_copy(update={"name": "delta", "preference": 500})

    async def probe(site: SiteConfig) -> dict[str, PartitionLoad]:
        return {"h100": PartitionLoad("h100", True, 0, 0)}

    router = Router(probe)
    assert (await router.choose("H100", [capped, other])).site.name == "gamma"
    router.started("gamma", "h100")
    assert (await router.choose("H100", [capped, other])).site.name == "delta"
    router.finished("gamma", "h100")
    assert (await router.choose("H100", [capped, other])).site.name == "gamma"


async def test_a_free_warm_pool_comes_first_even_behind_a_queue_and_is_only_asked_where_pools_are() -> None:
    preferred = gamma_site(name="h100")  # no pools, an empty queue, the better preference
    pooled = gamma_site(name="h100", warm_pool={"max_jobs": 1}).model_copy(
        update={"name": "delta", "preference": 500}
    )
    asked: list[int] = []
    free: set[tuple[str, str]] = set()

    async def probe(site: SiteConfig) -> dict[str, PartitionLoad]:
        pending = 3 if site.name == "delta" else 0
        return {"h100": PartitionLoad("h100", True, pending, 1)}

    async def warm(gpus: int) -> set[tuple[str, str]]:
        asked.append(gpus)
        return set(free)

    router = Router(probe, warm=warm)
    assert (await router.choose("H100", [preferred, pooled])).site.name == "gamma"
    free.add(("delta", "h100"))
    choice = await router.choose("H100", [preferred, pooled])
    assert choice.site.name == "delta" and choice.why.startswith("a free warm pool")
    assert asked == [1, 1]
    await router.choose("H100", [preferred])
    assert asked == [1, 1]  # no partition there keeps a pool: the store is not asked
