"""The site YAML's `isolation:` (gateway/config/sites.py), what the job script passes the runner, and the
local site without bubblewrap."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.config.sites import SiteConfig, load_site, local_site
from gateway.config.tasks import load_task
from gateway.core.errors import BackendError, ConfigError
from gateway.running.backends.base import JobRequest
from gateway.running.backends.local import LocalBackend
from gateway.running.bundle import build_spec
from gateway.running.jobscript import TemplateRenderer

SITE = """\
name: iso
submit_via: local
workdir: /scratch/runs
isolation: {isolation}
partitions:
  - name: h100
    gpu_type: H100
"""


def site_with(tmp_path: Path, isolation: str) -> SiteConfig:
    path = tmp_path / "iso.yaml"
    path.write_text(SITE.format(isolation=isolation))
    return load_site(path)


def test_sandboxed_by_default_and_the_runner_is_told(tmp_path: Path) -> None:
    path = tmp_path / "iso.yaml"
    path.write_text(SITE.replace("isolation: {isolation}\n", ""))
    site = load_site(path)
    assert site.isolation.kind == "bubblewrap" and site.isolation.confined
    assert site.isolation.runner_args() == ("--isolation", "bubblewrap")
    assert all(site.isolation.takes(mode) for mode in ("test", "benchmark", "leaderboard"))


def test_the_short_form_and_the_full_form(tmp_path: Path) -> None:
    assert site_with(tmp_path, "bubblewrap").isolation.kind == "bubblewrap"
    full = site_with(
        tmp_path, "{kind: apptainer, image: /images/torch.sif, python: python3.12, bind: [/opt/cuda]}"
    ).isolation
    assert full.runner_args() == (
        "--isolation", "apptainer", "--image", "/images/torch.sif", "--python", "python3.12",
        "--bind", "/opt/cuda",
    )  # fmt: skip


def test_unconfined_takes_only_the_listed_modes_and_never_leaderboard(tmp_path: Path) -> None:
    site = site_with(tmp_path, "{kind: none, unconfined_modes: [test]}")
    assert site.isolation.takes("test") and not site.isolation.takes("benchmark")
    assert not site.isolation.takes("leaderboard")
    with pytest.raises(ConfigError, match=r"iso\.yaml.*unconfined_modes"):
        site_with(tmp_path, "{kind: none, unconfined_modes: [leaderboard]}")


@pytest.mark.parametrize(
    ("isolation", "words"),
    [
        ("chroot", "isolation.kind"),
        ("{kind: apptainer}", "needs image"),
        ("{kind: bubblewrap, unconfined_modes: [test]}", "for kind: none only"),
        ("{bind: [/home]}", "not / or homes"),
        ("{bind: [relative/path]}", "absolute"),
        ("{command: 'bwrap; rm -rf /'}", "isolation.command"),
    ],
)
def test_bad_isolation_names_the_file_line_and_field(tmp_path: Path, isolation: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        site_with(tmp_path, isolation)
    assert "iso.yaml:4" in str(caught.value) and words in str(caught.value)


def test_a_changed_isolation_needs_a_new_check(tmp_path: Path) -> None:
    first = site_with(tmp_path, "bubblewrap").isolation.digest()
    assert site_with(tmp_path, "{kind: bubblewrap}").isolation.digest() == first
    assert site_with(tmp_path, "{kind: bubblewrap, bind: [/opt/cuda]}").isolation.digest() != first


async def test_the_local_site_without_bubblewrap_says_how_to_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    site = local_site(tmp_path / "runs")
    task = load_task(REPO_ROOT / "problems" / "vectoradd")
    request = JobRequest(
        "r-1", site, site.partitions[0], task, "x = 1", build_spec("r-1", "test", task), "00" * 32
    )
    backend = LocalBackend(tmp_path / "runs", TemplateRenderer(REPO_ROOT / "templates"))
    with pytest.raises(BackendError, match="GATEWAY_LOCAL_ISOLATION=none"):
        await backend.submit([request])
    assert local_site(tmp_path, isolation="none").isolation.takes("benchmark")
