"""The sandbox's GPU device nodes (harness/sandbox.py): NVIDIA's and AMD's, only the job's own GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import sandbox
from harness.sandbox import Isolation, apptainer_args, bubblewrap_args, gpu_device_nodes


def fake_dev(root: Path, names: list[str]) -> str:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return str(root)


def test_amd_gets_kfd_and_the_render_and_card_nodes_its_job_may_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = fake_dev(
        tmp_path, ["kfd", "dri/renderD128", "dri/renderD129", "dri/card0", "dri/card1", "dri/by-path"]
    )
    # Slurm's cgroup lets the job open its own GPU (renderD128, card0) and not the other
    monkeypatch.setattr(sandbox, "_opens", lambda path: not path.endswith(("renderD129", "card1")))
    assert gpu_device_nodes(dev) == [f"{dev}/kfd", f"{dev}/dri/renderD128", f"{dev}/dri/card0"]


def test_dri_nodes_without_kfd_are_not_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine's display (a VM's virtio GPU) is no ROCm device: nothing of dri is bound without kfd."""
    monkeypatch.setattr(sandbox, "_opens", lambda path: True)
    assert gpu_device_nodes(fake_dev(tmp_path, ["dri/renderD128", "dri/card0"])) == []


def test_nvidia_gets_the_control_nodes_and_the_gpus_its_job_may_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = fake_dev(tmp_path, ["nvidiactl", "nvidia-uvm", "nvidia0", "nvidia1", "nvidia-caps/nvidia-cap1"])
    monkeypatch.setattr(sandbox, "_opens", lambda path: not path.endswith("nvidia1"))
    assert gpu_device_nodes(dev) == [
        f"{dev}/nvidiactl",
        f"{dev}/nvidia-uvm",
        f"{dev}/nvidia-caps",
        f"{dev}/nvidia0",
    ]


AMD_NODES = ["/dev/kfd", "/dev/dri/renderD128", "/dev/dri/card0"]


def test_bubblewrap_binds_each_amd_node_as_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "gpu_device_nodes", lambda: AMD_NODES)
    args = bubblewrap_args([], [], "/task", {})
    for node in AMD_NODES:
        at = args.index(node)
        assert args[at - 1 : at + 2] == ["--dev-bind", node, node]
    assert args.index("--dev") < args.index("/dev/kfd")  # on the sandbox's own /dev, not the host's


def test_apptainer_asks_for_rocm_on_an_amd_node(monkeypatch: pytest.MonkeyPatch) -> None:
    image = Isolation("apptainer", image="/images/torch.sif")
    monkeypatch.setattr(sandbox, "gpu_device_nodes", lambda: AMD_NODES)
    args = apptainer_args(image, [], [], "/task", {})
    assert "--rocm" in args and "--nv" not in args
    monkeypatch.setattr(sandbox, "gpu_device_nodes", lambda: ["/dev/nvidiactl", "/dev/nvidia0"])
    args = apptainer_args(image, [], [], "/task", {})
    assert "--nv" in args and "--rocm" not in args
