"""The routing policy: its YAML (errors name file, line and field) and its decisions, with a scripted
load probe in place of the sites."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.config.sites import SiteConfig, load_sites
from gateway.core.errors import BackendError, ConfigError, UserError
from gateway.running.backends.base import PartitionLoad
from gateway.running.policy import RoutingPolicy, choose_route, load_policy
from gateway.running.routing import CircuitBreaker, Router
from tests.unit.fakes import gamma_site

POLICY = """\
backends:
  modal:
    kind: modal
    gpus: {H100: run_h100}
  github:
    kind: github
    repository: octo-org/kernel-runners
    gpus: {H100: gpu-h100, L4: gpu-l4}
    bundle_public_key: x4H2vLkRkKq+fx5Y3y0M8s8B2c6G8nQ9fJm1W4n7Yhk=
rules:
  - leaderboards: [grayscale-*]
    gpu_types: [h100]
    sites: [gamma]
    fallbacks: [github]
  - gpu_types: [H100]
    sites: [gamma]
    fallbacks: [modal, github]
    fallback_over_pending: 3
"""


def policy(tmp_path: Path, text: str = POLICY) -> RoutingPolicy:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return load_policy(path, ["gamma"])


class Probe:
    """Partition loads by site name; a site named in ``down`` fails its probe."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.pending: dict[str, int] = {}

    async def __call__(self, site: SiteConfig) -> dict[str, PartitionLoad]:
        if site.name in self.down:
            raise BackendError(f"{site.name}: connection refused")
        return {
            p.name: PartitionLoad(p.name, True, self.pending.get(site.name, 0), 0, "idle")
            for p in site.partitions
        }


async def test_a_down_site_sends_the_run_to_the_rules_fallbacks_in_order_and_back_when_it_returns(
    tmp_path: Path,
) -> None:
    rules, gamma, probe = policy(tmp_path), gamma_site(), Probe()
    router = Router(probe, breakers={"gamma": CircuitBreaker(cooldown_s=0.1)})
    fallbacks = rules.fallback_sites()
    assert (await choose_route(router, rules, "H100", [gamma], fallbacks, "vectoradd")).site.name == "gamma"
    probe.down.add("gamma")
    router.record("gamma", "ssh: connection refused")  # as a failed submit does: its cached load goes
    choice = await choose_route(router, rules, "H100", [gamma], fallbacks, "vectoradd")
    assert (choice.site.name, choice.site.kind, choice.partition.name) == ("modal", "modal", "H100")
    assert choice.why.startswith("fallback 1 of 2 (modal): gamma: unhealthy (cannot read partition state")
    probe.down.add("modal")  # Modal's queue status fails too: the next fallback
    router.record("modal", "modal: AuthError")
    choice = await choose_route(router, rules, "H100", [gamma], fallbacks, "vectoradd")
    assert choice.site.name == "github" and "modal: unhealthy" in choice.why
    assert router.breaker("gamma").is_open  # 3 failures in a row: one try after the cooldown
    probe.down.clear()
    await asyncio.sleep(0.15)
    assert (await choose_route(router, rules, "H100", [gamma], fallbacks, "vectoradd")).site.name == "gamma"


async def test_rules_are_per_leaderboard_and_the_first_match_decides(tmp_path: Path) -> None:
    rules, gamma, probe = policy(tmp_path), gamma_site(), Probe()
    probe.down.add("gamma")
    router, fallbacks = Router(probe), rules.fallback_sites()
    assert (
        await choose_route(router, rules, "H100", [gamma], fallbacks, "grayscale-v2")
    ).site.name == "github"
    assert (await choose_route(router, rules, "H100", [gamma], fallbacks, "softmax")).site.name == "modal"
    # no rule for L4: today's routing, with no fallback
    with pytest.raises(UserError, match="no site offers GPU type 'L4'"):
        await choose_route(router, rules, "L4", [], fallbacks, "softmax")


async def test_a_saturated_site_gives_way_to_a_fallback_but_is_kept_when_none_can_take_it(
    tmp_path: Path,
) -> None:
    rules, gamma, probe = policy(tmp_path), gamma_site(), Probe()
    router, fallbacks = Router(probe), rules.fallback_sites()
    probe.pending["gamma"] = 4  # over fallback_over_pending: 3
    choice = await choose_route(router, rules, "H100", [gamma], fallbacks, "softmax")
    assert choice.site.name == "modal" and "gamma/h100: saturated (4 jobs waiting)" in choice.why
    probe.down |= {"modal", "github"}
    router.record("modal", "modal: AuthError")  # a failed submit there drops its cached queue status
    choice = await choose_route(router, rules, "H100", [gamma], fallbacks, "softmax")
    assert choice.site.name == "gamma" and "no fallback could take it" in choice.why
    probe.down.add("gamma")
    router.record("gamma", "ssh: connection refused")
    with pytest.raises(UserError, match="no site or fallback can run a H100 job now"):
        await choose_route(router, rules, "H100", [gamma], fallbacks, "softmax")


def test_policy_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = POLICY.replace("fallbacks: [github]", "fallbacks: [gitlab]").replace("kind: modal", "kind: modl")
    with pytest.raises(ConfigError) as raised:
        policy(tmp_path, bad)
    text = str(raised.value)
    assert f"{tmp_path / 'routing.yaml'}:3: backends.modal: Input tag 'modl'" in text
    bad = POLICY.replace("sites: [gamma]\n    fallbacks: [github]", "sites: [delta]\n    fallbacks: [gitlab]")
    with pytest.raises(ConfigError) as raised:
        policy(tmp_path, bad)
    assert str(raised.value).splitlines() == [
        f"{tmp_path / 'routing.yaml'}:13: rules[0].sites: no site named delta (sites: gamma)",
        f"{tmp_path / 'routing.yaml'}:14: rules[0].fallbacks: gitlab not defined under backends",
    ]
    with pytest.raises(
        ConfigError,
        match=r"routing.yaml:7: backends.github.repository: 'not a repo' is not allowed here: "
        "expected a GitHub repository as OWNER/NAME",
    ):
        policy(tmp_path, POLICY.replace("octo-org/kernel-runners", "not a repo"))
    with pytest.raises(ConfigError, match="backend name 'gamma' is already a site's name"):
        policy(tmp_path, POLICY.replace("  modal:\n", "  gamma:\n").replace("[modal, github]", "[github]"))


def test_the_shipped_policy_loads_against_the_shipped_sites() -> None:
    sites = load_sites(REPO_ROOT / "site_configs")
    shipped = load_policy(REPO_ROOT / "site_configs" / "policy" / "routing.yaml", list(sites))
    assert {name: site.kind for name, site in shipped.fallback_sites().items()} == {
        "modal": "modal",
        "github": "github",
    }
    rule = shipped.rule_for("any-board", "H100")
    assert rule is not None and rule.sites == ["alpha"] and rule.fallbacks == ["modal"]


def test_a_site_yaml_cannot_declare_a_fallback_kind(tmp_path: Path) -> None:
    text = (REPO_ROOT / "site_configs" / "alpha.yaml").read_text()
    (tmp_path / "alpha.yaml").write_text(text.replace("name: alpha", "name: alpha\nkind: modal", 1))
    with pytest.raises(ConfigError, match="kind: modal is a fallback backend"):
        load_sites(tmp_path)
