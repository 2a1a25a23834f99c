"""The site check's last step: a real test-mode run of a tiny task (gateway/probe/) through
Gateway.submit, without a database. It passes only when the site's setup lines, the python on the node,
torch, the harness and the authenticated result channel all work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from gateway.config.gpu_types import vendor_of
from gateway.config.sites import SiteConfig
from gateway.config.tasks import load_task
from gateway.core import resources
from gateway.core.errors import GatewayError
from gateway.service.model import EventCallback, SubmitRequest
from gateway.sitecheck.step import Step

if TYPE_CHECKING:
    from gateway.running.execution import RunReport
    from gateway.service.sitedir import SiteDirectory

PROBE_TASK_DIR = resources.probe_task_dir()
PROBE_TASK_NAME = "site-check-probe"
PROBE_USER = "site-check"
DEFAULT_PROBE_TIMEOUT_S = 300.0
OUTPUT_LINES_SHOWN = 15
Progress = Callable[[str], Awaitable[None]]


class ProbeGateway(Protocol):
    """What a probe submits through: a gateway of one site and no database
    (gateway.service.facade.probe_gateway, passed in by whoever runs the check, so the site check never
    imports the service above it)."""

    @property
    def sites(self) -> SiteDirectory: ...

    async def submit(self, request: SubmitRequest, on_event: EventCallback | None = None) -> RunReport: ...

    async def close(self) -> None: ...


GatewayForSite = Callable[[SiteConfig], ProbeGateway]


def probe_key(gpu_type: str | None) -> tuple[str, str]:
    label = gpu_type or "default"
    return f"probe:{label}", f"probe job ({label})"


async def run_probe(
    site: SiteConfig,
    gpu_type: str | None,
    open_gateway: GatewayForSite,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    on_progress: Progress | None = None,
) -> Step:
    key, title = probe_key(gpu_type)
    task = load_task(PROBE_TASK_DIR, name=PROBE_TASK_NAME)
    code = (PROBE_TASK_DIR / "submission.py").read_text(encoding="utf-8")
    gateway = open_gateway(site)

    async def progress(_run_id: str, message: str) -> None:
        if on_progress is not None:
            await on_progress(f"{title}: {message}")

    request = SubmitRequest(
        code, "submission.py", PROBE_USER, task, site=site.name, gpu_type=gpu_type, mode="test", admin=True
    )
    started = time.monotonic()
    try:
        report = await asyncio.wait_for(gateway.submit(request, progress), timeout_s)
    except TimeoutError:
        return Step(
            key,
            title,
            "FAIL",
            f"no result within {timeout_s:.0f} s (the job was cancelled)",
            "see whether the partition is busy or holds the job (squeue -u <user> on the login node); "
            "rerun with a longer --probe-timeout",
        )
    except GatewayError as exc:
        return Step(key, title, "FAIL", str(exc), "see the error above")
    finally:
        await gateway.close()
    elapsed = time.monotonic() - started
    where = f"job {report.job_id} on partition {report.partition}"
    if not report.passed:
        output = "\n".join(report.output_tail.splitlines()[-OUTPUT_LINES_SHOWN:])
        shown = f"\nlast lines of the job's output:\n{output}" if output else ""
        return Step(key, title, "FAIL", f"{where}: {report.error}{shown}", _fix_for(report.output_tail, site))
    system = report.result.system if report.result else {}
    facts = ", ".join(
        f"{name} {system.get(field) or '?'}"
        for name, field in (
            ("host", "hostname"),
            ("python", "python"),
            ("torch", "torch"),
            ("device", "device"),
        )
    )
    note = gpu_note(gpu_type, str(system.get("device") or ""))
    return Step(key, title, "PASS", f"{where} passed in {elapsed:.1f} s: {facts}{note}")


_VENDOR = {"cuda": "nvidia", "rocm": "amd"}  # system info's device -> whose GPU it is


def gpu_note(gpu_type: str | None, device: str) -> str:
    """What a passing probe notes about the GPU it saw: none where a GPU type was asked, or another
    vendor's than the partition's GPU type says (an MI300X partition whose node runs nvidia-smi)."""
    vendor = vendor_of(gpu_type)
    if vendor is None:
        return ""
    if device == "cpu":
        tool = "amd-smi or rocm-smi" if vendor == "amd" else "nvidia-smi"
        return f"; note: the node has no {tool}, so no GPU was seen (expected only with fake GPUs)"
    if device in _VENDOR and _VENDOR[device] != vendor:
        return f"; note: the node reports {device} GPUs, not {gpu_type}: check the partition's gpu_type"
    return ""


def _fix_for(output: str, site: SiteConfig) -> str:
    if "No module named 'torch'" in output:
        return (
            f"the python on the node ({site.python}) has no torch: make a setup line activate an "
            "environment that has it (module load, conda activate, source <venv>/bin/activate)"
        )
    if "No module named" in output:
        return "a module is missing on the node: check the setup lines and `python:` in the YAML"
    if "command not found" in output or "No such file" in output:
        return "a setup line or the interpreter failed on the node: see the output above"
    return "read the job's output above (output.log in the run's folder under the workdir on the site)"
