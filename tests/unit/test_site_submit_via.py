"""submit_via: ssh or local; a site file that still says pyslurm is told why it went and what to write."""

from pathlib import Path

import pytest

from gateway.config.sites import load_site
from gateway.core.errors import ConfigError

SITE = """\
name: gamma
submit_via: {via}
workdir: runs
partitions:
  - name: gpu
    gpu_type: H100
    gres: "gpu:h100:1"
"""


def test_pyslurm_is_refused_with_the_reason_and_the_choices(tmp_path: Path) -> None:
    path = tmp_path / "gamma.yaml"
    path.write_text(SITE.format(via="pyslurm"))
    with pytest.raises(ConfigError) as info:
        load_site(path)
    message = str(info.value)
    assert "gamma.yaml:2" in message and "submit_via" in message
    assert "pyslurm is not supported: use ssh, or local" in message
    assert "Slurm release" in message


def test_local_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "gamma.yaml"
    path.write_text(SITE.format(via="local"))
    assert load_site(path).submit_via == "local"
