"""The site check's steps against a scripted login node (the command seam faked)."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from gateway.config.settings import Settings
from gateway.running.transport.ssh import HostKeyError, is_pinned
from gateway.sitecheck import SiteCheck, Step
from gateway.sitecheck.slurm import gres_offered, parse_slurm_time
from tests.unit.fakes import FakeTransport

HOST, PORT = "login.example.org", 2222
SINFO = "l4|up|idle|gpu:a100:2(S:0-1),gpu:l4:1|10:00\na100*|up|mix|gpu:a100:2(S:0-1),gpu:l4:1|1-00:00:00\n"
ASSOC = "beta|research|normal,short\n"
COMPILERS = (
    "nvcc|/usr/local/cuda/bin/nvcc|nvcc: NVIDIA (R) Cuda compiler driver Cuda compilation tools, "
    "release 13.0, V13.0.88 \ng++|/usr/bin/g++|g++ (Debian 12.2.0-14+deb12u1) 12.2.0 Copyright \n"
    "ninja|/home/gwrun/venv/bin/ninja|1.13.2 \n"
)


def write_site(folder: Path, *, partition: str = "l4", pinned: bool = True, extra: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "id").write_text("not read by the fake transport")
    if pinned:
        key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
        (folder / "known_hosts").write_text(f"[{HOST}]:{PORT} {key}\n")
    (folder / "gamma.yaml").write_text(
        f"""\
name: gamma
login: {{host: {HOST}, port: {PORT}, user: gwrun, identity_file: id, known_hosts: known_hosts}}
workdir: gamma-runs
account: research
qos: short
partitions:
  - {{name: {partition}, gpu_type: L4, gres: "gpu:l4:1", time_limit: "00:10:00"}}
{extra}"""
    )


def login_node(*, missing: str = "", assoc: str = ASSOC, compilers: str = COMPILERS) -> FakeTransport:
    def respond(argv: list[str], _stdin: str | bytes | None) -> tuple[int, str, str]:
        if argv[:2] == ["sh", "-c"] and "command -v" in argv[2]:
            return 0, missing, ""
        if argv[:2] == ["sh", "-c"]:  # the workdir probe
            return 0, "/dev/vda1 100 10 2097152 1% /home\n", ""
        answers = {
            "id": (0, "gwrun\n", ""),
            "sbatch": (0, "slurm 22.05.8\n", ""),
            "sacct": (0, "", ""),
            "scontrol": (0, "ClusterName             = beta\n", ""),
            "sinfo": (0, SINFO, ""),
            "sacctmgr": (0, assoc, ""),
            "bash": (0, compilers, ""),  # the compilers step, after the site's setup lines
        }
        return answers[argv[0]]

    return FakeTransport(respond)


async def check(folder: Path, transport: FakeTransport) -> tuple[SiteCheck, dict[str, Step]]:
    site_check = SiteCheck(
        Settings(sites_dir=folder), "gamma", transport_factory=lambda _site: transport, probe=False
    )
    steps = {step.key: step async for step in site_check.steps()}
    return site_check, steps


async def test_a_good_site_passes_every_step(tmp_path: Path) -> None:
    write_site(tmp_path)
    transport = login_node()
    site_check, steps = await check(tmp_path, transport)
    assert [s.status for s in steps.values()] == ["PASS"] * 8 + ["SKIP", "SKIP"], steps
    assert steps["isolation"].detail == "not asked for (--no-probe)"  # both probes are real runs
    assert site_check.passed
    assert "slurm 22.05.8, cluster beta" in steps["slurm"].detail
    assert "gwrun may use account research, qos short on cluster beta" in steps["account"].detail
    assert "/home/gwrun/gamma-runs is writable; 2.0 GiB free" in steps["workdir"].detail
    # the association is asked for on the cluster this login node submits to
    assert ["sacctmgr", "-n", "-P", "show", "assoc", "user=gwrun", "cluster=beta"] == transport.commands(
        "sacctmgr"
    )[0][:7]


async def test_a_partition_that_does_not_exist_fails_by_name_and_its_probe_is_skipped(tmp_path: Path) -> None:
    write_site(tmp_path, partition="l40s")
    site_check = SiteCheck(
        Settings(sites_dir=tmp_path), "gamma", transport_factory=lambda _site: login_node()
    )
    steps = {step.key: step async for step in site_check.steps()}
    failed = steps["partition:l40s"]
    assert failed.status == "FAIL"
    assert "partition 'l40s' does not exist on the cluster (its partitions: a100, l4)" in failed.detail
    assert "partitions[0].name" in failed.fix
    assert steps["probe:L4"].status == "SKIP" and "partition l40s" in steps["probe:L4"].detail
    assert not site_check.passed


async def test_missing_slurm_commands_skip_every_step_that_needs_them(tmp_path: Path) -> None:
    write_site(tmp_path)
    _, steps = await check(tmp_path, login_node(missing="sbatch\nsacct\n"))
    assert steps["slurm"].status == "FAIL" and "sbatch, sacct" in steps["slurm"].detail
    assert "slurm.bin_dir" in steps["slurm"].fix
    assert steps["partition:l4"].status == "SKIP" and steps["account"].status == "SKIP"
    assert steps["workdir"].status == "PASS"  # needs only the login


async def test_an_account_the_user_is_not_in_fails_with_the_sacctmgr_line_to_ask_for(tmp_path: Path) -> None:
    write_site(tmp_path)
    _, steps = await check(tmp_path, login_node(assoc="beta|physics|normal\n"))
    assert steps["account"].status == "FAIL"
    assert "not associated with account 'research' on cluster beta" in steps["account"].detail
    assert "sacctmgr add user gwrun account=research cluster=beta" in steps["account"].fix


async def test_a_qos_the_user_may_not_use_fails(tmp_path: Path) -> None:
    write_site(tmp_path)
    _, steps = await check(tmp_path, login_node(assoc="beta|research|normal\n"))
    assert steps["account"].status == "FAIL" and "QOS 'short' is not allowed" in steps["account"].detail
    assert "set qos+=short" in steps["account"].fix


async def test_an_unpinned_host_fails_before_any_connection_is_tried(tmp_path: Path) -> None:
    write_site(tmp_path, pinned=False)
    transport = login_node()
    _, steps = await check(tmp_path, transport)
    assert steps["host-key"].status == "FAIL"
    assert f"ssh-keyscan -p {PORT} {HOST}" in steps["host-key"].fix
    assert "trust_on_first_use" in steps["host-key"].fix
    assert steps["connect"].status == "SKIP" and transport.calls == []


async def test_trust_on_first_use_lets_an_unpinned_host_through(tmp_path: Path) -> None:
    write_site(tmp_path, pinned=False)
    text = (
        (tmp_path / "gamma.yaml")
        .read_text()
        .replace("known_hosts: known_hosts}", "known_hosts: known_hosts, trust_on_first_use: true}")
    )
    (tmp_path / "gamma.yaml").write_text(text)
    _, steps = await check(tmp_path, login_node())
    assert steps["host-key"].status == "PASS" and "trust_on_first_use is on" in steps["host-key"].detail


async def test_a_time_limit_above_the_partitions_maxtime_fails(tmp_path: Path) -> None:
    write_site(tmp_path)
    text = (tmp_path / "gamma.yaml").read_text().replace('"00:10:00"', '"01:00:00"')
    (tmp_path / "gamma.yaml").write_text(text)
    _, steps = await check(tmp_path, login_node())
    assert steps["partition:l4"].status == "FAIL" and "MaxTime 10:00" in steps["partition:l4"].detail


async def test_a_warm_pool_living_past_the_partitions_maxtime_fails(tmp_path: Path) -> None:
    write_site(tmp_path)
    pool = 'time_limit: "00:05:00", warm_pool: {max_jobs: 1, max_lifetime: "00:30:00"}'
    text = (tmp_path / "gamma.yaml").read_text().replace('time_limit: "00:10:00"', pool)
    (tmp_path / "gamma.yaml").write_text(text)
    _, steps = await check(tmp_path, login_node())
    step = steps["partition:l4"]
    assert (
        step.status == "FAIL"
        and "warm_pool.max_lifetime 00:30:00 is above the partition's MaxTime 10:00" in step.detail
    )
    assert "pend for ever" in step.detail and "at most 10:00" in step.fix


async def test_an_invalid_yaml_fails_first_with_file_and_line_and_nothing_else_runs(tmp_path: Path) -> None:
    write_site(tmp_path, extra="colour: blue\n")
    transport = login_node()
    _, steps = await check(tmp_path, transport)
    assert list(steps) == ["yaml"]
    assert f"{tmp_path / 'gamma.yaml'}:8: colour: not a setting here" in steps["yaml"].detail
    assert transport.calls == []


async def test_an_unknown_site_says_which_files_there_are(tmp_path: Path) -> None:
    write_site(tmp_path)
    site_check = SiteCheck(Settings(sites_dir=tmp_path), "omega", probe=False)
    steps = [step async for step in site_check.steps()]
    assert len(steps) == 1 and steps[0].status == "FAIL"
    assert "no file in" in steps[0].detail and "gamma.yaml" in steps[0].detail


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10", 600),
        ("10:00", 600),
        ("5:30", 330),
        ("01:00:00", 3600),
        ("1-00:00:00", 86400),
        ("2-3", 2 * 86400 + 3 * 3600),
        ("0-00:30", 1800),
        ("infinite", None),
        ("UNLIMITED", None),
    ],
)
def test_slurm_times(text: str, seconds: int | None) -> None:
    assert parse_slurm_time(text) == seconds


def test_gres_strings() -> None:
    assert gres_offered("gpu:a100:2(S:0-1),gpu:l4:1") == ["gpu:a100", "gpu:l4"]
    assert gres_offered("gpu:2") == ["gpu"]
    assert gres_offered("(null)") == []


async def test_a_known_hosts_file_that_cannot_be_parsed_fails_with_its_reason(tmp_path: Path) -> None:
    """The transport and the check share one pinned-key test: a file it cannot parse is an error (never
    "not pinned", which trust on first use would answer by appending to it)."""
    write_site(tmp_path)
    (tmp_path / "known_hosts").write_text("@cert-authority\n")
    with pytest.raises(HostKeyError, match=r"cannot read the pinned host keys in .*known_hosts"):
        is_pinned(tmp_path / "known_hosts", HOST, PORT)
    transport = login_node()
    _, steps = await check(tmp_path, transport)
    assert steps["host-key"].status == "FAIL"
    assert "Invalid known hosts entry" in steps["host-key"].detail
    assert steps["connect"].status == "SKIP" and transport.calls == []


async def test_the_compilers_found_after_the_setup_lines_are_reported(tmp_path: Path) -> None:
    write_site(tmp_path, extra="setup: ['module load cuda/13.0']\n")
    transport = login_node()
    _, steps = await check(tmp_path, transport)
    assert steps["compilers"].status == "PASS"
    assert steps["compilers"].detail == "nvcc 13.0, g++ 12.2.0, ninja 1.13.2"
    [argv] = transport.commands("bash")
    assert argv[1] == "-c" and argv[2].startswith("module load cuda/13.0\n") and argv[4] == "python"
    # an AMD site without ninja: what it found, and what inline extensions miss (never a failure)
    amd = "hipcc|/opt/rocm/bin/hipcc|HIP version: 6.2.41133-dd7f95766 \ng++|/usr/bin/g++|g++ 11.4.0\n"
    _, steps = await check(tmp_path, login_node(compilers=amd))
    assert steps["compilers"].status == "PASS" and steps["compilers"].detail.startswith(
        "hipcc 6.2.41133, g++ 11.4.0; inline C++/CUDA (load_inline) needs g++ and ninja"
    )
