"""System facts for result.json, gathered without importing torch (that costs seconds of CPU that the
evaluator would compete for): the installed torch version, and nvidia-smi where there is a GPU."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any


def system_info() -> dict[str, Any]:
    """Host, torch and GPU facts, gathered without importing torch (that costs seconds of CPU that the
    evaluator would compete for): the installed torch version, and nvidia-smi where there is a GPU."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpus_allocated": os.environ.get("SLURM_CPUS_PER_TASK"),
        "gpus_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    try:
        info["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        info["torch"] = None
    info["cuda"] = _torch_cuda_version()
    info.update(_nvidia_smi())
    return info


def _nvidia_smi() -> dict[str, Any]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {"device": "cpu"}
    query = "name,driver_version,memory.total,clocks.sm,clocks.max.sm"
    try:
        done = subprocess.run(
            [smi, f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"device": "cuda", "gpu_error": f"nvidia-smi failed: {exc}"}
    first = done.stdout.strip().splitlines()[0].split(", ") if done.stdout.strip() else []
    keys = ("gpu", "driver", "gpu_memory", "sm_clock", "sm_clock_max")
    return {"device": "cuda", **dict(zip(keys, first, strict=False))}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _torch_cuda_version() -> str | None:
    """The CUDA version torch was built with, read from torch/version.py without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("cuda"):
            value = line.split("=", 1)[1].split("#")[0].strip().strip("'\"")
            return None if value == "None" else value
    return None
