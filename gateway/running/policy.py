"""The routing policy: per leaderboard and GPU type, which Slurm sites come first and which fallback
backends (Modal, GitHub Actions) take a run when no Slurm site can.

One YAML file (``site_configs/policy/routing.yaml``, or ``GATEWAY_ROUTING_POLICY_FILE``) defines the
fallback backends and the rules; docs/fallbacks.md describes it. Secrets are never in it: they come
from the settings (environment). The first rule matching a run's leaderboard and GPU type decides:

1. its ``sites`` in the order listed, then (unless ``other_sites: false``) every other site offering
   the GPU type, each through the router (circuit breaker, partition state, caps, queue depth);
2. a Slurm choice that is saturated (our ``max_jobs`` running there, or more than
   ``fallback_over_pending`` jobs waiting) is kept only if no fallback can take the run;
3. the rule's ``fallbacks`` in order, each also through the router: its circuit breaker and its queue
   status (Modal's backlog, GitHub's queued runs) count as for a site.

The reason of the choice names what was skipped and why; the service records it with the run.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from gateway.config.site_parts import NAME_PATTERN, PartitionConfig, StrictModel
from gateway.config.sites import SiteConfig
from gateway.config.yamlconf import load_yaml_model
from gateway.core.errors import UserError
from gateway.running.backends.fallback_config import (
    FALLBACK_WORKDIR,
    FallbackConfig,
    GithubConfig,
    ModalConfig,
)
from gateway.running.routing import Choice, Router

if TYPE_CHECKING:
    from gateway.config.settings import Settings


class Rule(StrictModel):
    leaderboards: list[str] = Field(
        default_factory=lambda: ["*"], description="globs; a run without a leaderboard matches only '*'"
    )
    gpu_types: list[str] = Field(default_factory=lambda: ["*"], description="globs, case-insensitive")
    sites: list[str] = Field(default_factory=list, description="preferred Slurm sites, in order")
    other_sites: bool = Field(default=True, description="then every other site offering the GPU type")
    fallbacks: list[str] = Field(default_factory=list, description="fallback backends, in order")
    fallback_at_cap: bool = Field(default=True, description="our max_jobs busy on Slurm: try fallbacks")
    fallback_over_pending: int | None = Field(
        default=None, ge=0, description="more jobs than this waiting on Slurm: try fallbacks"
    )

    @field_validator("sites")
    @classmethod
    def _known_sites(cls, sites: list[str], info: ValidationInfo) -> list[str]:
        known = (info.context or {}).get("sites")
        if known is not None and (missing := [s for s in sites if s not in known]):
            raise ValueError(f"no site named {', '.join(missing)} (sites: {', '.join(sorted(known))})")
        return sites

    @field_validator("fallbacks")
    @classmethod
    def _known_backends(cls, fallbacks: list[str], info: ValidationInfo) -> list[str]:
        known = (info.context or {}).get("backends")
        if known is not None and (missing := [f for f in fallbacks if f not in known]):
            raise ValueError(f"{', '.join(missing)} not defined under backends")
        return fallbacks

    def matches(self, leaderboard: str | None, gpu_type: str) -> bool:
        board_ok = any(
            p == "*" if leaderboard is None else fnmatch.fnmatchcase(leaderboard, p)
            for p in self.leaderboards
        )
        return board_ok and any(fnmatch.fnmatchcase(gpu_type.lower(), p.lower()) for p in self.gpu_types)


class RoutingPolicy(StrictModel):
    backends: dict[str, FallbackConfig] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    _groups: dict[tuple[int, int], tuple[list[SiteConfig], list[list[SiteConfig]]]] = PrivateAttr(
        default_factory=dict
    )

    @field_validator("backends")
    @classmethod
    def _backend_names(
        cls, backends: dict[str, ModalConfig | GithubConfig], info: ValidationInfo
    ) -> dict[str, ModalConfig | GithubConfig]:
        sites = set((info.context or {}).get("sites", ()))
        for name in backends:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"backend name {name!r}: letters, digits, _ . - (a letter first)")
            if name in sites or name == "local":
                raise ValueError(f"backend name {name!r} is already a site's name")
        return backends

    @model_validator(mode="after")
    def _known_backends(self) -> RoutingPolicy:
        for i, rule in enumerate(self.rules):
            unknown = [f for f in rule.fallbacks if f not in self.backends]
            if unknown:
                raise ValueError(f"rules[{i}].fallbacks: {', '.join(unknown)} not defined under backends")
        return self

    def site_groups(self, rule: Rule, sites: list[SiteConfig]) -> list[list[SiteConfig]]:
        """The groups of ``sites`` a run under ``rule`` tries in turn: each of its sites alone, then (unless
        ``other_sites`` is false) every other one. Kept while the same list is asked about: routing asks for
        every run, and with a hundred sites, sorting them out each time would cost more than the claim."""
        key = (id(rule), id(sites))
        known = self._groups.get(key)
        if known is not None and known[0] is sites:
            return known[1]
        by_name = {s.name: s for s in sites}
        groups = [[by_name[name]] for name in rule.sites if name in by_name]
        others = [s for s in sites if s.name not in rule.sites]
        if rule.other_sites and others:
            groups.append(others)
        if len(self._groups) > 64:  # lists of sites come and go (drains, isolation verdicts)
            self._groups.clear()
        self._groups[key] = (sites, groups)  # the list held: its id stays its own
        return groups

    def rule_for(self, leaderboard: str | None, gpu_type: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(leaderboard, gpu_type)), None)

    def fallback_sites(self) -> dict[str, SiteConfig]:
        return {name: fallback_site(name, config) for name, config in self.backends.items()}


def fallback_site(name: str, config: ModalConfig | GithubConfig) -> SiteConfig:
    """A fallback as a site: one partition per GPU type, so the router, the run's records and the job
    request treat it like any other site (its ``kind`` says which backend serves it)."""
    hours, rest = divmod(config.timeout_s, 3600)
    limit = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return SiteConfig(
        name=name,
        title=config.title or f"{config.kind} fallback",
        kind=config.kind,
        submit_via="local",
        preference=config.preference,
        workdir=FALLBACK_WORKDIR,
        python=config.python,
        setup=list(config.setup),
        isolation=config.isolation,
        partitions=[
            # one GPU per Modal function and per GitHub runner: routing refuses a multi-GPU task here
            PartitionConfig(
                name=gpu, gpu_type=gpu, max_jobs=config.max_jobs, time_limit=limit, gpus_per_node=1
            )
            for gpu in config.gpus
        ],
    )


def policy_path(settings: Settings) -> Path:
    """GATEWAY_ROUTING_POLICY_FILE, else policy/routing.yaml in the sites folder: a sites folder and its
    policy go together (a folder without one has no fallbacks)."""
    return settings.routing_policy_file or settings.sites_dir / "policy" / "routing.yaml"


def load_policy(path: Path | None, site_names: Sequence[str] = ()) -> RoutingPolicy:
    """The policy in ``path`` (an empty policy when there is none); errors name file, line and field."""
    if path is None or not path.is_file():
        return RoutingPolicy()
    try:  # the backends' names, so that a rule naming an undefined one is reported at its own line
        backends = list((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("backends") or {})
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        backends = None  # load_yaml_model reports what is wrong with the file
    context = {"sites": list(site_names), "backends": backends}
    return load_yaml_model(path, RoutingPolicy, context=context)


async def choose_route(
    router: Router,
    policy: RoutingPolicy,
    gpu_type: str,
    sites: list[SiteConfig],
    fallbacks: dict[str, SiteConfig],
    leaderboard: str | None,
    gpus: int = 1,
) -> Choice:
    """Where a run for ``gpu_type`` goes (see the module docstring). ``sites`` are the open Slurm sites
    offering the GPU type; ``fallbacks`` the open fallback sites by name."""
    rule = policy.rule_for(leaderboard, gpu_type)
    if rule is None:
        return await router.choose(gpu_type, sites, gpus)
    groups = policy.site_groups(rule, sites)
    skipped: list[str] = []
    saturated: Choice | None = None
    for group in groups:
        try:
            choice = await router.choose(gpu_type, group, gpus)
        except UserError as exc:
            skipped.append(str(exc).removeprefix(f"no site can run a {gpu_type} job now: "))
            continue
        busy = _saturation(rule, choice)
        if busy is None:
            return choice
        skipped.append(f"{choice.site.name}/{choice.partition.name}: {busy}")
        saturated = saturated or choice
    if not groups:
        skipped.append(f"no open Slurm site offers {gpu_type}")
    for number, name in enumerate(rule.fallbacks, 1):
        site = fallbacks.get(name)
        if site is None or not site.partitions_for(gpu_type):
            skipped.append(f"{name}: {'drained' if site is None else f'no {gpu_type}'}")
            continue
        try:
            choice = await router.choose(gpu_type, [site], gpus)
        except UserError as exc:
            skipped.append(str(exc).removeprefix(f"no site can run a {gpu_type} job now: "))
            continue
        why = f"fallback {number} of {len(rule.fallbacks)} ({site.kind}): " + "; ".join(skipped)
        return Choice(choice.site, choice.partition, f"{why}; {choice.why}", choice.at_cap, choice.pending)
    if saturated is not None:
        why = f"{saturated.why}; saturated, and no fallback could take it: " + "; ".join(skipped)
        return Choice(saturated.site, saturated.partition, why, saturated.at_cap, saturated.pending)
    raise UserError(f"no site or fallback can run a {gpu_type} job now: " + "; ".join(skipped))


def _saturation(rule: Rule, choice: Choice) -> str | None:
    if rule.fallback_at_cap and choice.at_cap:
        return f"saturated (our {choice.partition.max_jobs} jobs there are running)"
    if rule.fallback_over_pending is not None and choice.pending > rule.fallback_over_pending:
        return f"saturated ({choice.pending} jobs waiting)"
    return None
