from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.config.sites import load_site, load_sites, local_site
from gateway.core.errors import ConfigError

GOOD = """\
name: gamma
title: test site
login:
  host: login.example.org
  user: alice
  identity_file: keys/id
  known_hosts: keys/known_hosts
workdir: runs
setup:
  - module load cuda
partitions:
  - name: gpu
    gpu_type: H100
    gres: "gpu:h100:1"
"""


def write(tmp_path: Path, text: str, name: str = "gamma.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dev_sites_load_with_their_gpu_types() -> None:
    sites = load_sites(REPO_ROOT / "site_configs")
    assert set(sites) >= {"alpha", "beta"}
    assert sites["alpha"].partition_for("h100") is not None
    assert sites["beta"].partition_for("A100") is not None
    assert sites["beta"].partition_for("L4") is not None
    assert sites["alpha"].partition_for("A100") is None


def test_relative_key_paths_resolve_next_to_the_yaml(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, GOOD))
    assert site.login is not None
    assert site.login.identity_file == (tmp_path / "keys/id").resolve()
    assert site.login.known_hosts == (tmp_path / "keys/known_hosts").resolve()


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    bad = GOOD.replace('gres: "gpu:h100:1"', 'gres: "gpu:h100:1"\n    time_limit: "ten minutes"')
    path = write(tmp_path, bad)
    with pytest.raises(ConfigError) as info:
        load_site(path)
    message = str(info.value)
    assert f"{path}:15: partitions[0].time_limit" in message
    assert "Slurm time" in message


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    bad = GOOD.replace("  user: alice\n", "  user: Alice Smith\n").replace("workdir: runs\n", "")
    with pytest.raises(ConfigError) as info:
        load_site(write(tmp_path, bad))
    message = str(info.value)
    assert ":5: login.user" in message
    assert "workdir: missing: this setting is required" in message


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":2: titel: not a setting here \(did you mean title\?\)"):
        load_site(write(tmp_path, GOOD.replace("title:", "titel:")))


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gamma.yaml:3: not valid YAML"):
        load_site(write(tmp_path, "name: gamma\nlogin:\n  host: a: b\nworkdir: x\n"))


def test_a_shell_metacharacter_in_a_partition_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"partitions\[0\].name"):
        load_site(write(tmp_path, GOOD.replace("- name: gpu", "- name: 'gpu;rm -rf ~'")))


def test_duplicate_site_names_across_files(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "one.yaml")
    write(tmp_path, GOOD, "two.yaml")
    with pytest.raises(ConfigError, match="defined twice"):
        load_sites(tmp_path)


def test_local_site_is_built_in(tmp_path: Path) -> None:
    site = local_site(tmp_path)
    assert site.kind == "local" and site.login is None
    with pytest.raises(ConfigError, match="built-in"):
        load_site(write(tmp_path, GOOD.replace("name: gamma", "name: local")))
