"""Zero-config discovery (gateway/config/discovery.py) from Slurm output captured on the dev stack's alpha and
beta clusters (tests/unit/fixtures/slurm/), and the service picking the discovered site only when no site is
configured."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.config import discovery
from gateway.config.cluster_info import (
    SlurmPartition,
    parse_associations,
    parse_cluster_name,
    parse_default_account,
    parse_gres,
    parse_partitions,
    parse_time_s,
)
from gateway.config.discovery import Discovery, DiscoveryError, build_discovery, discover, site_yaml
from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.sites import SiteConfig, load_site, load_sites
from gateway.core.commands import CompletedCommand
from gateway.core.errors import CommandError, UserError
from gateway.running.backends.base import PartitionLoad
from gateway.service.facade import Gateway
from gateway.service.isolation import Verdict, Verifier
from tests.unit.fakes import gamma_site
from tests.unit.test_policy import policy

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


class SlurmOutputs:
    """The runner seam: each discovery command answered with a captured output (or a failure)."""

    def __init__(self, cluster: str = "alpha", **overrides: CompletedCommand | Exception) -> None:
        self.answers: dict[str, CompletedCommand | Exception] = {
            "sinfo": self._ok("sinfo", fixture(f"sinfo_{cluster}.txt")),
            "scontrol": self._ok("scontrol", fixture(f"scontrol_config_{cluster}.txt")),
            "sacctmgr": self._ok("sacctmgr", fixture("sacctmgr_user_withassoc_gwrun.txt")),
            "python": CompletedCommand(("python",), 1, "", ""),  # this interpreter: no torch
        }
        self.answers.update(overrides)
        self.asked: list[tuple[str, ...]] = []

    @staticmethod
    def _ok(command: str, stdout: str) -> CompletedCommand:
        return CompletedCommand((command,), 0, stdout, "")

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | bytes | None = None,
        timeout: float | None = 30.0,
        check: bool = True,
    ) -> CompletedCommand:
        self.asked.append(tuple(argv))
        key = argv[0] if argv[0] in ("sinfo", "scontrol", "sacctmgr") else "python"
        answer = self.answers[key]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_sinfo_partitions_of_alpha_with_their_gres_and_max_time() -> None:
    partitions = parse_partitions(fixture("sinfo_alpha.txt"))
    assert partitions == [
        SlurmPartition("h100", True, 600, {"h100": 2}, True),
        SlurmPartition("debug", False, 300, {"h100": 2}, True),
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10:00", 600), ("5:00", 300), ("1:00:00", 3600), ("2-00:00:00", 172800), ("30", 1800), ("2-3", 183600)],
)
def test_slurm_times_as_sinfo_prints_them(text: str, seconds: int) -> None:
    assert parse_time_s(text) == seconds


def test_an_infinite_time_limit_is_none_and_garbage_is_an_error() -> None:
    assert parse_time_s("infinite") is None and parse_time_s("UNLIMITED") is None
    with pytest.raises(ValueError):
        parse_time_s("soon")


@pytest.mark.parametrize(
    ("gres", "gpus"),
    [
        ("gpu:h100:4(S:0-1)", {"h100": 4}),
        ("gpu:a100:2,gpu:l4:1", {"a100": 2, "l4": 1}),
        ("gpu:a100_80g:4(S:0,1),mps:400", {"a100_80g": 4}),
        ("gpu:2", {"": 2}),
        ("gpu", {"": 1}),
        ("gpu:h100", {"h100": 1}),
        ("(null)", {}),
    ],
)
def test_gpus_in_a_gres_string(gres: str, gpus: dict[str, int]) -> None:
    assert parse_gres(gres) == gpus


def test_cluster_name_and_the_users_associations() -> None:
    assert parse_cluster_name(fixture("scontrol_config_alpha.txt")) == "alpha"
    assert parse_cluster_name("nothing here") is None
    rows = parse_associations(fixture("sacctmgr_user_withassoc_gwrun.txt"))
    assert [(r.cluster, r.account, r.qos) for r in rows] == [
        ("alpha", "research", ("normal", "short")),
        ("beta", "research", ("normal", "short")),
    ]
    assert parse_default_account(fixture("sacctmgr_user_withassoc_gwrun.txt")) == "research"


async def test_alpha_becomes_a_local_submit_site_that_validates_as_a_site_file(tmp_path: Path) -> None:
    runner = SlurmOutputs()
    found = await discover(runner=runner, user="gwrun")
    site = found.site
    assert (site.name, site.kind, site.submit_via, site.account, site.qos) == (
        "alpha",
        "slurm",
        "local",
        "research",
        None,
    )
    assert [(p.name, p.gpu_type, p.gres, p.time_limit) for p in site.partitions] == [
        ("h100", "H100", "gpu:h100:1", "00:10:00"),
        ("debug", "H100", "gpu:h100:1", "00:05:00"),  # its MaxTime is 5 minutes
    ]
    assert site.isolation.kind == "bubblewrap"
    assert site.python == "python3"  # this interpreter has no torch: python3 from the job's PATH
    assert any("has no torch" in note for note in found.notes)
    assert ("sacctmgr", "-n", "-P", "show", "user", "gwrun", "withassoc") == runner.asked[2][:7]
    assert len(runner.asked) == 4  # sinfo, scontrol, sacctmgr and the interpreter's torch, at once
    # what `gateway sites init` writes loads as the same site, alone in a sites folder
    (tmp_path / "alpha.yaml").write_text(site_yaml(found))
    assert load_site(tmp_path / "alpha.yaml") == site
    assert list(load_sites(tmp_path)) == ["alpha"]


async def test_an_interpreter_with_torch_is_the_sites_python() -> None:
    found = await discover(runner=SlurmOutputs(python=CompletedCommand(("p",), 0, "", "")), user="gwrun")
    assert found.site.python == discovery.own_python()
    assert not any("torch" in note for note in found.notes)


async def test_beta_partitions_sharing_nodes_each_stand_for_the_gpu_they_are_named_after() -> None:
    found = await discover(runner=SlurmOutputs("beta"), user="gwrun")
    assert [(p.name, p.gpu_type, p.gres) for p in found.site.partitions] == [
        ("a100", "A100", "gpu:a100:1"),
        ("l4", "L4", "gpu:l4:1"),
    ]
    assert found.site.name == "beta" and found.site.account == "research"


async def test_a_failing_sinfo_says_what_failed_and_what_to_do() -> None:
    stderr = fixture("sinfo_no_conf.stderr")
    runner = SlurmOutputs(sinfo=CompletedCommand(("sinfo",), 1, "", stderr))
    with pytest.raises(DiscoveryError) as caught:
        await discover(runner=runner, user="gwrun")
    message = str(caught.value)
    assert message.startswith("sinfo failed: sinfo: error: s_p_parse_file: cannot stat file")
    assert "gateway sites init" in message and "--site local" in message


async def test_a_sinfo_that_hangs_is_reported_as_no_answer() -> None:
    hung = CommandError(("sinfo",), None, "", "retrying in 1sec up to 60sec", timed_out=True)
    with pytest.raises(DiscoveryError, match=r"sinfo failed: no answer within 10 s \(retrying"):
        await discover(runner=SlurmOutputs(sinfo=hung), user="gwrun")


async def test_a_missing_sinfo_or_slurm_conf_is_said_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DiscoveryError, match="sinfo failed: sinfo: not installed"):
        await discover(runner=SlurmOutputs(sinfo=FileNotFoundError(2, "not installed")), user="gwrun")
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")
    with pytest.raises(
        DiscoveryError, match=r"SLURM_CONF names /nonexistent/slurm\.conf, which is not a file"
    ):
        await discover(runner=SlurmOutputs(), user="gwrun")


async def test_without_accounting_the_site_charges_slurms_defaults() -> None:
    disabled = CompletedCommand(("sacctmgr",), 1, "", "sacctmgr: error: accounting storage is disabled\n")
    found = await discover(runner=SlurmOutputs(sacctmgr=disabled), user="gwrun")
    assert found.site.account is None and found.site.qos is None
    assert any("sacctmgr failed (sacctmgr: error: accounting storage is disabled)" in n for n in found.notes)


def test_a_default_qos_is_charged_and_down_or_cpu_partitions_are_left_out() -> None:
    partitions = [
        SlurmPartition("cpu", True, None, {}, True),
        SlurmPartition("gpu", False, None, {"h100": 8}, True),  # infinite: the 10 minute default
        SlurmPartition("old", False, 3600, {"v100": 4}, False),
    ]
    rows = parse_associations("u|proj|c|lab|||\nu|proj|c|proj||normal,high|high\n")
    found = build_discovery("c", partitions, rows, "proj", python="python3", isolation="none")
    assert [(p.name, p.time_limit) for p in found.site.partitions] == [("gpu", "00:10:00")]
    assert (found.site.account, found.site.qos) == ("proj", "high")
    assert found.site.isolation.unconfined_modes == ["test", "benchmark", "profile"]
    assert "partition old is not up: left out" in found.notes


def test_untyped_gpus_are_kept_but_a_gpu_type_asks_the_user_to_name_them() -> None:
    found = build_discovery(
        "lab",
        [SlurmPartition("gpu", True, 600, {"": 4}, True)],
        [],
        None,
        python="python3",
        isolation="bubblewrap",
    )
    assert [(p.name, p.gpu_type, p.gres) for p in found.site.partitions] == [("gpu", None, "gpu:1")]
    with pytest.raises(DiscoveryError) as caught:
        found.check_offers("H100")
    assert "gres names no type (gpu:N)" in str(caught.value) and "set gpu_type" in str(caught.value)
    assert "set gpu_type (e.g. H100)" in site_yaml(found)


def test_a_cluster_without_gpus_is_refused_and_odd_cluster_names_are_made_site_names() -> None:
    with pytest.raises(DiscoveryError, match="no partition with GPUs"):
        build_discovery(
            "c", [SlurmPartition("cpu", True, None, {}, True)], [], None, python="p", isolation="none"
        )
    gpu = [SlurmPartition("g", True, None, {"h100": 1}, True)]
    names = [
        build_discovery(c, gpu, [], None, python="p", isolation="none").site.name
        for c in ("local", "9x", None)
    ]
    assert names == ["local-slurm", "slurm-9x", "slurm"]


# -- the service: discovery only with no site configured ----------------------------------------------


class IdleBackend:
    def __init__(self, site: SiteConfig) -> None:
        self.site = site

    async def load(self) -> dict[str, PartitionLoad]:
        return {p.name: PartitionLoad(p.name, True, 0, 0) for p in self.site.partitions}

    async def close(self) -> None:
        return None


def alpha_discovery() -> Discovery:
    return build_discovery(
        "alpha",
        parse_partitions(fixture("sinfo_alpha.txt")),
        [],
        None,
        python="python3",
        isolation="bubblewrap",
    )


def zero_config_gateway(
    tmp_path: Path, sites: dict[str, SiteConfig], verify_isolation: Verifier | None = None
) -> Gateway:
    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path, templates_dir=REPO_ROOT / "templates")
    return Gateway(
        settings,
        sites,
        None,
        backend_factory=IdleBackend,  # type: ignore[arg-type]
        verify_isolation=verify_isolation,
    )


@pytest.fixture
def login_node(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """sbatch on the PATH, and discovery answering alpha (counted)."""
    calls: list[str] = []

    async def fake_discover(isolation: str = "bubblewrap", **_: object) -> Discovery:
        calls.append(isolation)
        return alpha_discovery()

    monkeypatch.setattr(discovery, "sbatch_on_path", lambda: True)
    monkeypatch.setattr(discovery, "discover", fake_discover)
    return calls


async def test_no_site_and_sbatch_on_the_path_sends_a_gpu_run_to_the_local_cluster(
    tmp_path: Path, login_node: list[str]
) -> None:
    gateway = zero_config_gateway(tmp_path, {})
    choice = await gateway.placement.route(None, "h100", mode="test")
    assert (choice.site.name, choice.site.submit_via, choice.partition.gpu_type) == ("alpha", "local", "H100")
    await gateway.placement.route(None, "H100", mode="benchmark")
    assert login_node == ["bubblewrap"]  # discovered once per gateway
    assert gateway.sites.site("alpha").name == "alpha"
    # this machine stays available by name, and is still where a run with no GPU type goes
    assert (await gateway.placement.route("local", "H100", mode="test")).site.name == "local"
    assert (await gateway.placement.route(None, None, mode="test")).site.name == "local"
    await gateway.close()


async def test_a_gpu_the_cluster_lacks_names_the_cluster_and_what_it_offers(
    tmp_path: Path, login_node: list[str]
) -> None:
    gateway = zero_config_gateway(tmp_path, {})
    with pytest.raises(
        UserError, match=r"cluster alpha \(found with sinfo\) has no partition .*'A100'; offered: H100"
    ):
        await gateway.placement.route(None, "A100", mode="test")
    await gateway.close()


async def test_a_leaderboard_mode_run_on_the_discovered_site_needs_no_isolation_probe(
    tmp_path: Path, login_node: list[str]
) -> None:
    """Zero-config runs have no database: nothing they run is ranked, so no probe job goes before them
    (with a database there is no discovery, and the probe gates leaderboard runs as on any site)."""
    probed: list[str] = []

    async def probe(site: SiteConfig) -> Verdict:
        probed.append(site.name)
        return Verdict(False, "unconfined")

    gateway = zero_config_gateway(tmp_path, {}, probe)
    assert (await gateway.placement.route(None, "H100", mode="leaderboard")).site.name == "alpha"
    assert probed == []
    await gateway.close()


async def test_a_configured_site_is_never_replaced_by_discovery(
    tmp_path: Path, login_node: list[str]
) -> None:
    gateway = zero_config_gateway(tmp_path, {"gamma": gamma_site()})
    assert (await gateway.placement.route(None, "H100", mode="test")).site.name == "gamma"
    with pytest.raises(UserError, match="no site offers GPU type 'A100'"):
        await gateway.placement.route(None, "A100", mode="test")
    assert login_node == []
    await gateway.close()


async def test_without_sbatch_nothing_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "sbatch_on_path", lambda: False)
    gateway = zero_config_gateway(tmp_path, {})
    with pytest.raises(UserError, match="no site offers GPU type 'H100'"):
        await gateway.placement.route(None, "H100", mode="test")
    await gateway.close()


async def test_a_routing_policy_with_fallbacks_is_configuration_too(
    tmp_path: Path, login_node: list[str]
) -> None:
    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path, templates_dir=REPO_ROOT / "templates")
    gateway = Gateway(settings, {}, None, backend_factory=IdleBackend, policy=policy(tmp_path))  # type: ignore[arg-type]
    assert (await gateway.placement.route(None, "H100", "softmax", mode="test")).site.kind == "modal"
    with pytest.raises(UserError, match="no site offers GPU type 'L4'"):
        await gateway.placement.route(None, "L4", "softmax", mode="test")
    assert login_node == []
    await gateway.close()


async def test_the_discovered_cluster_can_be_named_and_a_typo_stays_unknown(
    tmp_path: Path, login_node: list[str]
) -> None:
    gateway = zero_config_gateway(tmp_path, {})
    with pytest.raises(
        UserError, match=r"unknown site 'alpah' \(did you mean alpha\?\); known sites: alpha, local"
    ):
        await gateway.placement.route("alpah", None, mode="test")
    choice = await gateway.placement.route("alpha", None, mode="test")
    assert (choice.site.name, choice.partition.gpu_type) == ("alpha", "H100")
    assert login_node == ["bubblewrap"]
    await gateway.close()


async def test_with_a_database_runs_go_to_site_files_only(tmp_path: Path, login_node: list[str]) -> None:
    gateway = zero_config_gateway(tmp_path, {})
    gateway.sites.store = object()  # type: ignore[assignment]  # recorded runs: another process may take them over
    await gateway.sites.zero_config("H100")
    assert login_node == [] and gateway.sites.configured == {}
    message = str(gateway.placement.unknown_gpu("H100"))
    assert "`gateway sites init` writes its cluster as a site file" in message
    gateway.sites.store = None
    await gateway.close()
