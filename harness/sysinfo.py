"""System facts for result.json, gathered without importing torch (that costs seconds of CPU that the
evaluator would compete for): the installed torch version, and the GPUs as nvidia-smi, or on AMD amd-smi
(ROCm 6 and later) or rocm-smi, report them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any


def system_info() -> dict[str, Any]:
    """Host, torch and GPU facts, gathered without importing torch (that costs seconds of CPU that the
    evaluator would compete for): the installed torch version, and the vendor's tool where there is a
    GPU (nvidia-smi; amd-smi, else rocm-smi)."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpus_allocated": os.environ.get("SLURM_CPUS_PER_TASK"),
        "gpus_visible": next((os.environ[n] for n in VISIBLE_DEVICES_ENV if n in os.environ), None),
    }
    try:
        info["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        info["torch"] = None
    info["cuda"] = _torch_version_field("cuda")
    info["hip"] = _torch_version_field("hip")
    info.update(gpu_info())
    return info


# Slurm sets CUDA_VISIBLE_DEVICES for a job's GPUs of either vendor; ROCm reads its own as well
VISIBLE_DEVICES_ENV = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


def gpu_info() -> dict[str, Any]:
    """The GPUs as their vendor's tool reports them: ``device`` cuda (NVIDIA) or rocm (AMD), the first
    GPU's name, driver and memory, and how many the job sees; ``device: cpu`` when no tool is here."""
    if shutil.which("nvidia-smi"):
        return _nvidia_smi()
    if shutil.which("amd-smi"):
        return _amd_smi()
    if shutil.which("rocm-smi"):
        return _rocm_smi()
    return {"device": "cpu"}


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout


def _nvidia_smi() -> dict[str, Any]:
    query = "name,driver_version,memory.total,clocks.sm,clocks.max.sm"
    try:
        text = _run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"])
    except (OSError, subprocess.SubprocessError) as exc:
        return {"device": "cuda", "gpu_error": f"nvidia-smi failed: {exc}"}
    return parse_nvidia_smi(text)


def parse_nvidia_smi(text: str) -> dict[str, Any]:
    """``nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,
    noheader``: one line per GPU."""
    lines = text.strip().splitlines()
    first = lines[0].split(", ") if lines else []
    keys = ("gpu", "driver", "gpu_memory", "sm_clock", "sm_clock_max")
    return {"device": "cuda", **dict(zip(keys, first, strict=False)), "gpu_count": len(lines)}


def _amd_smi() -> dict[str, Any]:
    try:
        text = _run(["amd-smi", "static", "--asic", "--vram", "--driver", "--json"])
    except (OSError, subprocess.SubprocessError) as exc:
        return {"device": "rocm", "gpu_error": f"amd-smi failed: {exc}"}
    return parse_amd_smi(text)


def parse_amd_smi(text: str) -> dict[str, Any]:
    """``amd-smi static --asic --vram --driver --json``: a list of GPUs (ROCm 6.0-6.3), or an object
    holding it under ``gpu_data`` (ROCm 6.4 and later); sizes as ``{"value": 196592, "unit": "MB"}`` or
    as a string."""
    try:
        data = json.loads(text)
    except ValueError:
        return {"device": "rocm", "gpu_error": "amd-smi printed no JSON"}
    gpus = data.get("gpu_data", []) if isinstance(data, dict) else data
    if not isinstance(gpus, list) or not gpus or not isinstance(gpus[0], dict):
        return {"device": "rocm", "gpu_error": "amd-smi listed no GPU"}
    first = gpus[0]
    asic, vram, driver = (_section(first, k) for k in ("asic", "vram", "driver"))
    info: dict[str, Any] = {"device": "rocm", "gpu_count": len(gpus)}
    for key, value in (
        ("gpu", asic.get("market_name")),
        ("gfx", asic.get("target_graphics_version")),
        ("driver", driver.get("version")),
        ("gpu_memory", _size(vram.get("size"))),
    ):
        if value not in (None, "", "N/A"):
            info[key] = str(value)
    return info


def _rocm_smi() -> dict[str, Any]:
    try:
        text = _run(
            ["rocm-smi", "--showproductname", "--showdriverversion", "--showmeminfo", "vram", "--json"]
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"device": "rocm", "gpu_error": f"rocm-smi failed: {exc}"}
    return parse_rocm_smi(text)


def parse_rocm_smi(text: str) -> dict[str, Any]:
    """``rocm-smi --showproductname --showdriverversion --showmeminfo vram --json``: one object per card
    (``card0``...) and ``system``."""
    try:
        data = json.loads(text)
    except ValueError:
        return {"device": "rocm", "gpu_error": "rocm-smi printed no JSON"}
    if not isinstance(data, dict):
        return {"device": "rocm", "gpu_error": "rocm-smi printed no GPU"}
    cards = [v for k, v in sorted(data.items()) if k.startswith("card") and isinstance(v, dict)]
    if not cards:
        return {"device": "rocm", "gpu_error": "rocm-smi listed no GPU"}
    first, system = cards[0], _section(data, "system")
    info: dict[str, Any] = {"device": "rocm", "gpu_count": len(cards)}
    vram = str(first.get("VRAM Total Memory (B)") or "")
    for key, value in (
        ("gpu", first.get("Card Series") or first.get("Card series")),
        ("gfx", first.get("GFX Version")),
        ("driver", system.get("Driver version")),
        ("gpu_memory", f"{int(vram) // (1 << 20)} MiB" if vram.isdigit() else None),
    ):
        if value not in (None, "", "N/A"):
            info[key] = str(value)
    return info


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _size(value: Any) -> str | None:
    if isinstance(value, dict) and "value" in value:
        return f"{value['value']} {value.get('unit', '')}".strip()
    return None if value is None else str(value)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _torch_version_field(name: str) -> str | None:
    """The CUDA (``cuda``) or HIP (``hip``) version torch was built with, read from torch/version.py
    without importing torch; None for a build without it."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.split("=", 1)[0].strip().split(":")[0].strip() == name:
            value = line.split("=", 1)[1].split("#")[0].strip().strip("'\"")
            return None if value == "None" else value
    return None
