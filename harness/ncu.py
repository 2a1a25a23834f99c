"""Nsight Compute in profile mode: the submission's kernels under ``ncu``, its report returned as a file.

The runner asks for it (spec.json ``ncu``, from the site's ``profile: {ncu: true}``) and, when ``ncu`` is on
the job's PATH, gives the evaluator a folder for the report (REPORT_ENV). After the profiler's tables, the
evaluator starts one more user-code process (harness.usercode), this one under ``ncu`` inside the same
sandbox (ncu's folder readable, the report folder its only writable bind), and runs each benchmark once in
it. The runner then checks the report's size against REPORT_LIMIT, moves it into the bundle as
REPORT_NAME, and signs its size and digest into result.json, so the gateway takes only the file this run
wrote.

ncu reads the GPU's performance counters: the node's driver must allow that to users who are not admins
(``NVreg_RestrictProfilingToAdminUsers=0``), else the report says ERR_NVGPUCTRPERM.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

REPORT_ENV = "HARNESS_NCU_REPORT"  # the report's path without its suffix; set by the runner
REPORT_NAME = "profile.ncu-rep"  # in the bundle, where the gateway fetches it
REPORT_LIMIT = 20 * 1024 * 1024  # bytes; a larger report is dropped with a message
LAUNCH_COUNT = 20  # kernels profiled (each is replayed many times: ncu is slow)


def find_ncu() -> str | None:
    """The ``ncu`` on the job's PATH (its real path: a symlink in /usr/bin points into the toolkit)."""
    found = shutil.which("ncu")
    return os.path.realpath(found) if found else None


def ncu_folder(ncu: str) -> str:
    """The folder the sandbox must make readable for ``ncu``: its Nsight Compute installation (ncu is a
    launcher script next to its target/ and sections/ folders)."""
    return str(Path(ncu).resolve().parent)


def ncu_command(ncu: str, report: str) -> list[str]:
    """``ncu`` in front of a command: every process it starts, the first LAUNCH_COUNT kernels, written to
    ``report`` (``.ncu-rep`` appended)."""
    return [
        ncu,
        "--target-processes",
        "all",
        "--launch-count",
        str(LAUNCH_COUNT),
        "--force-overwrite",
        "--export",
        report,
    ]


def report_file(report: str) -> Path:
    return Path(report + ".ncu-rep")


def collect(report: str, bundle: Path) -> dict[str, Any]:
    """What result.json says of the report: ``{"file", "size", "sha256"}`` once it is moved into the bundle,
    or ``{"error"}`` saying why there is none."""
    path = report_file(report)
    try:
        size = path.stat().st_size
    except OSError:
        return {"error": "ncu wrote no report (see the job's output for what it said)"}
    if size > REPORT_LIMIT:
        path.unlink(missing_ok=True)
        return {
            "error": f"the Nsight Compute report is {size / 2**20:.1f} MiB, over the "
            f"{REPORT_LIMIT // 2**20} MiB this gateway keeps: profile fewer or smaller benchmarks"
        }
    target = bundle / REPORT_NAME
    shutil.move(str(path), target)
    os.chmod(target, 0o644)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    return {"file": REPORT_NAME, "size": size, "sha256": digest}
