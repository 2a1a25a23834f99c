"""Multi-GPU tasks: a partition says how many GPUs a node gives a job (gpus_per_node), routing sends a task
of N GPUs per run only where it fits and says why when nothing does, and the job asks for the N GPUs (and
CPUs and memory per GPU) on one node."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.cluster_info import scale_gres
from gateway.config.gpu_types import RunnerName, read_runner_name, vendor_of
from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.site_parts import PartitionConfig
from gateway.config.sites import SiteConfig
from gateway.config.tasks import load_task
from gateway.core.errors import UserError
from gateway.core.states import JobState
from gateway.running.backends.base import PartitionLoad
from gateway.running.backends.fallback_config import ModalConfig
from gateway.running.bundle import build_spec
from gateway.running.policy import fallback_site
from gateway.running.routing import Router
from gateway.service.facade import Gateway
from gateway.service.model import SubmitRequest
from tests.unit.fakes import gamma_site, tiny_task
from tests.unit.test_service import ScriptedBackend, verified


def two_partitions() -> SiteConfig:
    """alpha's shape: h100 nodes give a job 2 GPUs, debug nodes 1."""
    site = gamma_site(name="h100", gpus_per_node=2)
    debug = PartitionConfig(name="debug", gpu_type="H100", gres="gpu:h100:1")
    return site.model_copy(update={"name": "alpha", "partitions": [debug, *site.partitions]})


async def idle(site: SiteConfig) -> dict[str, PartitionLoad]:
    return {p.name: PartitionLoad(p.name, True, 0, 0) for p in site.partitions}


class AlphaBackend(ScriptedBackend):
    async def load(self) -> dict[str, PartitionLoad]:
        return await idle(two_partitions())


async def test_a_two_gpu_task_goes_to_the_partition_that_gives_two() -> None:
    router = Router(idle)
    assert (await router.choose("H100", [two_partitions()])).partition.name == "debug"  # first in the file
    assert (await router.choose("H100", [two_partitions()], gpus=2)).partition.name == "h100"


async def test_a_four_gpu_task_is_refused_naming_the_largest_partition() -> None:
    with pytest.raises(UserError) as refused:
        await Router(idle).choose("H100", [two_partitions()], gpus=4)
    assert str(refused.value) == (
        "the task needs 4 GPUs per run (on one node); the largest H100 partition offers 2 per node "
        "(alpha/h100)"
    )


async def test_the_gateway_refuses_a_task_that_fits_nowhere_before_it_runs(tmp_path: Path) -> None:
    """The front ends' path (run_direct without a database; enqueue calls the same check before storing)."""
    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path, templates_dir=REPO_ROOT / "templates")
    backend = AlphaBackend(lambda r: (JobState.FAILED, None))  # never submitted: outcomes stay empty
    sites = {"alpha": two_partitions()}
    gateway = Gateway(settings, sites, None, backend_factory=lambda s: backend, verify_isolation=verified)
    try:
        with pytest.raises(UserError, match=r"needs 4 GPUs per run.*offers 2 per node \(alpha/h100\)"):
            gateway.placement.refuse_too_few_gpus("H100", 4)
        with pytest.raises(UserError, match=r"offers 2 per node \(alpha/h100\)"):
            await gateway.submit(
                SubmitRequest(
                    code="def custom_kernel(d):\n    return d\n",
                    file_name="k.py",
                    user="u",
                    task=tiny_task(gpus_per_run=4),
                    gpu_type="H100",
                    mode="test",
                    admin=True,
                )
            )
        gateway.placement.refuse_too_few_gpus("H100", 2)  # fits alpha/h100: no error
        assert (await gateway.placement.route(None, "H100", mode="test", gpus=2)).partition.name == "h100"
    finally:
        await gateway.close()
    assert backend.outcomes == {}


async def test_a_fallback_of_one_gpu_per_run_refuses_a_multi_gpu_task() -> None:
    modal = fallback_site("modal", ModalConfig(kind="modal", gpus={"H100": "run_h100"}))
    with pytest.raises(UserError, match=r"needs 2 GPUs per run.*offers 1 per node \(modal/H100\)"):
        await Router(idle).choose("H100", [modal], gpus=2)


@pytest.mark.parametrize(
    ("gres", "gpus", "scaled"),
    [
        ("gpu:h100:1", 1, "gpu:h100:1"),
        ("gpu:h100:1", 4, "gpu:h100:4"),
        ("gpu:mi300x:1", 8, "gpu:mi300x:8"),
        ("gpu", 2, "gpu:2"),
        ("gpu:1,mps:100", 2, "gpu:2,mps:100"),
        (None, 1, None),
        (None, 2, "gpu:2"),
    ],
)
def test_a_partitions_gres_scales_to_the_gpus_a_run_takes(gres: str | None, gpus: int, scaled: str) -> None:
    assert scale_gres(gres, gpus) == scaled


def test_cpus_and_memory_scale_per_gpu() -> None:
    part = PartitionConfig(name="p", gres="gpu:a100:1", cpus_per_gpu=8, mem_per_gpu="64G", gpus_per_node=4)
    wanted = part.job_resources(4)
    assert (wanted.gres, wanted.cpus, wanted.mem) == ("gpu:a100:4", 32, "256G")
    assert part.fits(4) and not part.fits(5)


@pytest.mark.parametrize(
    ("name", "read", "vendor"),
    [
        ("MI300x8", RunnerName("MI300X", 8), "amd"),
        ("MI300X", RunnerName("MI300X", 1), "amd"),
        ("MI250", RunnerName("MI250", 1), "amd"),
        ("mi355x", RunnerName("mi355x", 1), "amd"),
        ("H100x2", RunnerName("H100", 2), "nvidia"),
        ("H100", RunnerName("H100", 1), "nvidia"),
        ("A100_80G", RunnerName("A100_80G", 1), "nvidia"),
        ("RTX4090", RunnerName("RTX4090", 1), "nvidia"),
    ],
)
def test_runner_names_read_as_a_gpu_type_and_a_count(name: str, read: RunnerName, vendor: str) -> None:
    assert read_runner_name(name) == read
    assert vendor_of(name) == vendor


def test_the_example_task_takes_two_gpus_and_its_spec_says_so() -> None:
    task = load_task(REPO_ROOT / "problems" / "allreduce_sum")
    assert task.gpus_per_run == 2
    assert build_spec("r-1", "test", task)["gpus"] == 2
    assert build_spec("r-1", "test", tiny_task())["gpus"] == 1


@pytest.mark.parametrize(
    ("gpu_type", "device", "note"),
    [
        ("H100", "cuda", ""),
        ("MI300X", "rocm", ""),
        ("H100", "cpu", "no nvidia-smi"),
        ("MI300X", "cpu", "no amd-smi or rocm-smi"),
        ("MI300X", "cuda", "reports cuda GPUs, not MI300X"),
        (None, "cpu", ""),
    ],
)
def test_the_site_checks_probe_notes_a_gpu_of_another_vendor(
    gpu_type: str | None, device: str, note: str
) -> None:
    from gateway.sitecheck.probe import gpu_note

    found = gpu_note(gpu_type, device)
    assert (note in found) if note else found == ""


AMD_SITE = """
name: delta
login: {host: login.example.org, user: gw, identity_file: key, known_hosts: known_hosts}
workdir: runs
partitions:
  - name: mi300x
    gpu_type: MI300X          # KernelBot's MI300x8: MI300X nodes of 8
    gres: "gpu:mi300x:1"
    cpus_per_gpu: 12
    mem_per_gpu: 192G
    gpus_per_node: 8
"""


async def test_an_amd_partition_takes_a_task_of_eight_gpus_on_one_node(tmp_path: Path) -> None:
    from gateway.config.sites import load_site
    from tests.unit.test_render import render_for

    (tmp_path / "delta.yaml").write_text(AMD_SITE)
    site = load_site(tmp_path / "delta.yaml")
    runner = read_runner_name("MI300x8")
    assert site.partitions_for(runner.gpu_type) and site.partitions[0].fits(runner.count)
    assert (await Router(idle).choose("MI300X", [site], gpus=8)).partition.name == "mi300x"
    script = render_for(site, "slurm", "python", "/home/gw/runs", tiny_task(gpus_per_run=8))
    for directive in ("--gres=gpu:mi300x:8", "--cpus-per-task=96", "--mem=1536G", "--nodes=1", "--ntasks=1"):
        assert f"#SBATCH {directive}\n" in script
