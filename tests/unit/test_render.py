"""Rendered scripts are deterministic, shell-safe, and match the golden files in tests/golden/."""

import os
import subprocess
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.config.sites import SiteConfig, local_site
from gateway.config.tasks import TaskDefinition
from gateway.running.backends.base import JobRequest, script_context
from gateway.running.bundle import BundlePaths
from gateway.running.jobscript import ScriptContext, TemplateRenderer
from tests.unit.fakes import gamma_site, tiny_task

GOLDEN = REPO_ROOT / "tests" / "golden"
RUN_ID = "00000000-0000-4000-8000-000000000001"
TASK = tiny_task()
SITE = gamma_site(setup=["module load cuda/12.4", 'source "$HOME/venv/bin/activate"'], mem_per_gpu="8G")


def render_for(site: SiteConfig, kind: str, python: str, workdir: str, task: TaskDefinition = TASK) -> str:
    renderer = TemplateRenderer(REPO_ROOT / "templates")
    request = JobRequest(RUN_ID, site, site.partitions[0], task, "code", {}, "00")
    ctx = script_context(request, BundlePaths.under(workdir, RUN_ID), python)
    return renderer.render(renderer.template_for(site.name, kind), ctx)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GATEWAY_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with GATEWAY_UPDATE_GOLDEN=1 if intended"


def test_slurm_script_matches_golden() -> None:
    check_golden("slurm.sbatch", render_for(SITE, "slurm", "python", "/home/u/runs"))


def test_local_script_matches_golden() -> None:
    check_golden("local.sh", render_for(local_site(Path("/tmp/gw")), "local", "/usr/bin/python3", "/tmp/gw"))


@pytest.mark.parametrize("site_name", ["alpha", "beta"])
def test_dev_site_scripts_match_golden(site_name: str) -> None:
    from gateway.config.sites import load_site

    site = load_site(REPO_ROOT / "site_configs" / f"{site_name}.yaml")
    check_golden(f"{site_name}.sbatch", render_for(site, "slurm", "python", f"/home/gwrun/{site_name}-runs"))


def test_multi_gpu_script_asks_for_its_gpus_cpus_and_memory_on_one_node() -> None:
    """A task of 2 GPUs per run on alpha's h100 partition (gpus_per_node 2, 1 CPU and 1G per GPU)."""
    from gateway.config.sites import load_site

    site = load_site(REPO_ROOT / "site_configs" / "alpha.yaml")
    text = render_for(site, "slurm", "python", "/home/gwrun/alpha-runs", tiny_task(gpus_per_run=2))
    check_golden("alpha-2gpus.sbatch", text)
    assert "#SBATCH --gres=gpu:h100:2\n" in text and "#SBATCH --nodes=1\n" in text
    assert "#SBATCH --cpus-per-task=2\n" in text and "#SBATCH --mem=2G\n" in text


def test_rendering_is_deterministic() -> None:
    assert render_for(SITE, "slurm", "python", "/w") == render_for(SITE, "slurm", "python", "/w")


def test_hostile_values_reach_the_shell_as_plain_words(tmp_path: Path) -> None:
    """A path with quotes, $() and spaces is one word to bash: nothing is executed."""
    marker = tmp_path / "pwned"
    hostile = f"/tmp/x'; touch {marker}; echo '$(touch {marker})"
    ctx = ScriptContext(
        run_id="r", job_name="gw-r", bundle_dir=hostile, runner=hostile, output_file=hostile, python="echo"
    )
    script = TemplateRenderer(REPO_ROOT / "templates").render("local.sh.j2", ctx)
    # run only the last line ("exec echo -u -I <runner> run <dir>") so it prints instead of running python
    done = subprocess.run(["bash", "-c", script.strip().splitlines()[-1]], capture_output=True, text=True)
    assert done.stdout.strip() == f"-u -B -I {hostile} run {hostile}"
    assert not marker.exists()


def test_strict_undefined_refuses_a_missing_variable(tmp_path: Path) -> None:
    from gateway.core.errors import ConfigError

    (tmp_path / "t.j2").write_text("{{ nope }}")
    ctx = ScriptContext(
        run_id="r", job_name="j", bundle_dir="/b", runner="/b/h", output_file="/o", python="p"
    )
    with pytest.raises(ConfigError, match="nope"):
        TemplateRenderer(tmp_path).render("t.j2", ctx)


def test_sandbox_refuses_attribute_escapes(tmp_path: Path) -> None:
    from gateway.core.errors import ConfigError

    (tmp_path / "t.j2").write_text("{{ run_id.__class__.__mro__[1].__subclasses__() }}")
    ctx = ScriptContext(
        run_id="r", job_name="j", bundle_dir="/b", runner="/b/h", output_file="/o", python="p"
    )
    with pytest.raises(ConfigError):
        TemplateRenderer(tmp_path).render("t.j2", ctx)


def test_site_override_template_is_preferred(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    (tmp_path / "base.sbatch.j2").write_text("{% block run %}base{% endblock %}\n")
    (tmp_path / "sites" / "gamma.sbatch.j2").write_text(
        '{% extends "base.sbatch.j2" %}{% block run %}apptainer exec img {{ python }}{% endblock %}'
    )
    renderer = TemplateRenderer(tmp_path)
    assert renderer.template_for("gamma", "slurm") == "sites/gamma.sbatch.j2"
    assert renderer.template_for("delta", "slurm") == "base.sbatch.j2"
    ctx = ScriptContext(
        run_id="r", job_name="j", bundle_dir="/b", runner="/b/h", output_file="/o", python="py 3"
    )
    assert renderer.render("sites/gamma.sbatch.j2", ctx) == "apptainer exec img 'py 3'"
