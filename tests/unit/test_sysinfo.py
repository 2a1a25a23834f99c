"""System info for result.json (harness/sysinfo.py): the GPUs as nvidia-smi, amd-smi or rocm-smi report
them, from captured output (no GPU here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness import sysinfo
from harness.sysinfo import gpu_info, parse_amd_smi, parse_nvidia_smi, parse_rocm_smi

NVIDIA_SMI = "NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB, 1980 MHz, 1980 MHz\n" * 2
# amd-smi static --asic --vram --driver --json, ROCm 6.2 (a list) and 6.4 (under gpu_data)
AMD_SMI_GPU = {
    "gpu": 0,
    "asic": {
        "market_name": "AMD Instinct MI300X",
        "target_graphics_version": "gfx942",
        "vendor_id": "0x1002",
    },
    "vram": {"type": "HBM", "size": {"value": 196592, "unit": "MB"}},
    "driver": {"name": "amdgpu", "version": "6.8.5"},
}
ROCM_SMI = {
    "card0": {
        "Card Series": "AMD Instinct MI250X/MI250",
        "GFX Version": "gfx90a",
        "VRAM Total Memory (B)": "68702699520",
    },
    "card1": {"Card Series": "AMD Instinct MI250X/MI250", "GFX Version": "gfx90a"},
    "system": {"Driver version": "6.3.6"},
}


def test_nvidia_smi() -> None:
    assert parse_nvidia_smi(NVIDIA_SMI) == {
        "device": "cuda", "gpu": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "gpu_memory": "81559 MiB",
        "sm_clock": "1980 MHz", "sm_clock_max": "1980 MHz", "gpu_count": 2,
    }  # fmt: skip


@pytest.mark.parametrize("shape", ["list", "gpu_data"])
def test_amd_smi_of_either_rocm_generation(shape: str) -> None:
    gpus = [AMD_SMI_GPU, AMD_SMI_GPU | {"gpu": 1}]
    text = json.dumps(gpus if shape == "list" else {"gpu_data": gpus})
    assert parse_amd_smi(text) == {
        "device": "rocm", "gpu_count": 2, "gpu": "AMD Instinct MI300X", "gfx": "gfx942", "driver": "6.8.5",
        "gpu_memory": "196592 MB",
    }  # fmt: skip


def test_rocm_smi() -> None:
    assert parse_rocm_smi(json.dumps(ROCM_SMI)) == {
        "device": "rocm", "gpu_count": 2, "gpu": "AMD Instinct MI250X/MI250", "gfx": "gfx90a",
        "driver": "6.3.6", "gpu_memory": "65520 MiB",
    }  # fmt: skip


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"system": {}}'])
def test_tool_output_that_says_nothing_is_an_error_not_a_crash(text: str) -> None:
    assert parse_amd_smi(text)["gpu_error"] and parse_rocm_smi(text)["gpu_error"]


def fake_tools(tmp_path: Path, outputs: dict[str, str]) -> str:
    """A PATH holding scripts named like the vendors' tools that print ``outputs``."""
    for name, text in outputs.items():
        script = tmp_path / name
        (tmp_path / f"{name}.out").write_text(text)
        script.write_text(f"#!/bin/sh\nexec /bin/cat {tmp_path / (name + '.out')}\n")
        script.chmod(0o755)
    return str(tmp_path)


def test_the_tool_present_is_the_one_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "amd").mkdir()
    monkeypatch.setenv("PATH", fake_tools(tmp_path / "amd", {"rocm-smi": json.dumps(ROCM_SMI)}))
    assert gpu_info()["gpu"] == "AMD Instinct MI250X/MI250"
    both = tmp_path / "both"
    both.mkdir()
    monkeypatch.setenv("PATH", fake_tools(both, {"amd-smi": json.dumps([AMD_SMI_GPU]), "rocm-smi": "{}"}))
    assert gpu_info()["gpu"] == "AMD Instinct MI300X"  # amd-smi first: rocm-smi is deprecated
    empty = tmp_path / "none"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert gpu_info() == {"device": "cpu"}


def test_a_failing_tool_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(argv: list[str]) -> str:
        raise subprocess.CalledProcessError(1, argv)

    monkeypatch.setattr(sysinfo, "_run", fail)
    monkeypatch.setattr("harness.sysinfo.shutil.which", lambda name: name if name == "amd-smi" else None)
    assert "amd-smi failed" in gpu_info()["gpu_error"]
