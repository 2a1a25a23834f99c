"""The Modal app: one function per GPU type, each running a job bundle with the harness and returning
result.json and the output's tail (gateway/running/backends/remote_job.py). Deploy it with

    modal deploy gateway/running/backends/modal_app.py

(docs/fallbacks.md). The routing policy's modal backend names these functions per GPU type.

Timeouts are explicit: Modal's default of 300 s silently killed KernelBot's longer runs. The function's
timeout (GATEWAY_MODAL_TIMEOUT_S at deploy time, 1800 s by default) must be at least the policy's
``timeout_s`` for this backend; the job inside gets 30 s less, so it still returns its output.

A container serves one run: Modal tears it down after one input (``single_use_containers=True``; older
Modal clients took ``max_inputs=1``), so nothing of one run (a process it left, a file in /tmp, the
GPU's state) meets the next. remote_job.run_bundle also kills what the job started and removes its
folders itself, before the container goes. The supervisor it starts is remote_job.py run as a script
(its ``__file__``, which the image's copy of the gateway package provides).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import modal

from gateway.running.backends import remote_job

APP_NAME = os.environ.get("GATEWAY_MODAL_APP", "kernel-gateway")
TIMEOUT_S = int(os.environ.get("GATEWAY_MODAL_TIMEOUT_S", "1800"))
STARTUP_TIMEOUT_S = int(os.environ.get("GATEWAY_MODAL_STARTUP_TIMEOUT_S", "600"))
# GPU type (as leaderboards name it) -> (Modal's GPU name, function name)
GPUS = {
    "T4": ("T4", "run_t4"),
    "L4": ("L4", "run_l4"),
    "A100": ("A100-80GB", "run_a100"),
    "H100": ("H100!", "run_h100"),  # "!": an H100, never upgraded to another GPU
    "B200": ("B200", "run_b200"),
}

# The bundle brings the harness; the image brings what the harness and tasks import, and bubblewrap for the
# sandbox the job script asks for (the policy's `isolation:`). torch's default Linux wheel carries CUDA.
image = (
    modal.Image.debian_slim(python_version="3.12")
    .apt_install("bubblewrap")  # the sandbox around submitted code (harness/sandbox.py)
    .pip_install("torch", "numpy")
    .add_local_python_source("gateway", copy=False)
)
app = modal.App(APP_NAME, image=image)

# one input per container, under the name this Modal client knows
ONE_RUN_PER_CONTAINER: dict[str, Any] = (
    {"single_use_containers": True}
    if "single_use_containers" in inspect.signature(modal.App.function).parameters
    else {"max_inputs": 1}
)
# the options of each GPU type's function, as given to app.function (tests read them here)
OPTIONS: dict[str, dict[str, Any]] = {
    gpu_type: {
        "gpu": modal_gpu,
        "name": function_name,
        "serialized": True,  # one body, several functions (one per GPU)
        "timeout": TIMEOUT_S,
        "startup_timeout": STARTUP_TIMEOUT_S,
        "retries": 0,  # the gateway decides what runs again
        "max_containers": int(os.environ.get("GATEWAY_MODAL_MAX_CONTAINERS", "8")),
        **ONE_RUN_PER_CONTAINER,
    }
    for gpu_type, (modal_gpu, function_name) in GPUS.items()
}
FUNCTIONS = {
    gpu_type: app.function(**options)(remote_job.run_bundle) for gpu_type, options in OPTIONS.items()
}
