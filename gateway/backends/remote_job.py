"""What runs on a fallback machine (a Modal container): unpack a job bundle, run its job script with a
time limit, and hand back result.json and the tail of the job's output.

Standard library only: the Modal image imports this module and nothing else of the gateway. The bundle
is the one every site gets (harness, task, spec.json, key, job.sh); its job script is rendered with the
bundle folder as ``.``, so it runs wherever it is unpacked. The GitHub workflow
(.github/workflows/gateway-run.yml) does the same steps in shell.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

OUTPUT_TAIL_BYTES = 64 * 1024
MAX_RESULT_BYTES = 4 * 1024 * 1024
KILL_GRACE_S = 5.0


class BundleError(ValueError):
    """The archive is not one job bundle (one folder named after its run)."""


def unpack(archive: bytes, into: Path) -> Path:
    """Unpack a bundle archive (a tar, gzip or not) into ``into``; return the bundle's folder."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        tops = {PurePosixPath(name).parts[0] for name in tar.getnames() if name not in ("", ".")}
        if len(tops) != 1:
            raise BundleError(f"expected one bundle folder in the archive, found {sorted(tops)[:5]}")
        # the "data" filter refuses absolute paths, links out of the folder and device files
        tar.extractall(into, filter="data")
    root = into / tops.pop()
    if not (root / "job.sh").is_file():
        raise BundleError("the bundle has no job.sh")
    return root


def _tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - limit))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _read_result(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_RESULT_BYTES)
    except OSError:
        return None


def run_unpacked(root: Path, time_limit_s: float) -> dict[str, Any]:
    """Run ``root/job.sh`` (its stdout and stderr into output.log) for at most ``time_limit_s``; the
    whole process group is killed after that, so a runaway submission cannot hold the machine."""
    output = root / "output.log"
    timed_out = False
    with output.open("ab") as log:
        proc = subprocess.Popen(
            ["bash", "job.sh"],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            exit_code: int | None = proc.wait(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait_s)
                    break
            exit_code = proc.returncode
    return {
        "run_id": root.name,
        "exit_code": exit_code,
        "timed_out": timed_out,
        "result": _read_result(root / "result.json"),
        "output": _tail(output, OUTPUT_TAIL_BYTES),
    }


def run_bundle(archive: bytes, time_limit_s: float) -> dict[str, Any]:
    """The body of the Modal function: a fresh folder per call, removed afterwards (containers are
    reused between calls)."""
    with tempfile.TemporaryDirectory(prefix="gateway-") as tmp:
        return run_unpacked(unpack(archive, Path(tmp)), time_limit_s)
