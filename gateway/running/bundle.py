"""The job bundle: one object derives every path in it, and staging writes it to a local folder."""

from __future__ import annotations

import functools
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gateway.config.tasks import SUBMISSION_PLACEHOLDER, TaskDefinition
from gateway.core import resources
from harness.protocol import RUN_ID

HARNESS_SOURCE = resources.harness_dir()  # the harness package as installed (or the checkout's)
# What `keep_bundles: logs` leaves of a bundle once its run ended; everything else (code, key, spec, harness,
# job script, whatever the job wrote there) is removed.
LOG_NAMES = ("output.log", "result.json")
# A run id is one path component under the workdir (the gateway's are UUIDs): harness.protocol.RUN_ID, the
# rule the pool runner checks too; so a bundle's folder is always a child of the workdir.
# A folder in a workdir that may be a gateway bundle: named by a run id as the store makes them (a UUID).
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_run_folder(name: str) -> bool:
    """Whether a workdir folder is named as the gateway names a bundle (a sweep touches no other)."""
    return bool(_UUID.match(name))


@dataclass(frozen=True)
class BundlePaths:
    """Paths inside ``<workdir>/<run-id>/`` on the site (POSIX paths: the site may not be this machine)."""

    root: PurePosixPath

    @classmethod
    def under(cls, workdir: str | PurePosixPath, run_id: str) -> BundlePaths:
        if not RUN_ID.fullmatch(run_id):
            raise ValueError(f"not a run id that can name a bundle folder: {run_id!r}")
        return cls(PurePosixPath(workdir) / run_id)

    @property
    def job_script(self) -> PurePosixPath:
        return self.root / "job.sh"

    @property
    def harness(self) -> PurePosixPath:
        return self.root / "harness"

    @property
    def runner(self) -> PurePosixPath:
        """The script the job starts (``python -I <runner> run <bundle>``)."""
        return self.harness / "__main__.py"

    @property
    def task(self) -> PurePosixPath:
        return self.root / "task"

    @property
    def spec(self) -> PurePosixPath:
        return self.root / "spec.json"

    @property
    def key(self) -> PurePosixPath:
        return self.root / "key"

    @property
    def output(self) -> PurePosixPath:
        return self.root / "output.log"

    @property
    def result(self) -> PurePosixPath:
        return self.root / "result.json"


def build_spec(
    run_id: str,
    mode: str,
    task: TaskDefinition,
    secret_seed: int | None = None,
    ncu: bool = False,
    file_name: str | None = None,
) -> dict[str, Any]:
    """spec.json as docs/architecture.md defines it (``ncu``: profile mode under Nsight Compute too;
    ``file_name``: the user's own name of the submitted file, which the harness's errors show instead of
    the bundle's ``submission``)."""
    return {
        "run_id": run_id,
        "mode": mode,
        "lang": task.lang,
        "main": task.main,
        "submission": task.submission_name,
        "file_name": file_name,
        "tests": task.tests,
        "benchmarks": task.benchmarks,
        "ranking_by": task.ranking_by,
        "seed": secret_seed,
        "timeouts": task.timeouts,
        "ncu": ncu and mode == "profile",
        # GPUs (and ranks) one run takes: the built-in evaluator starts this many; a task's own eval.py
        # sees them all and starts its ranks itself
        "gpus": task.gpus_per_run,
    }


# Modules only a warm pool's job runs (harness/__main__.py imports the pool only for `pool`): a run's bundle
# leaves them out (a fallback's dispatch carries the bundle within 60,000 characters).
POOL_ONLY = ("harness/pool.py", "harness/reaper.py", "harness/standby.py")


@functools.cache
def _harness_files(pool: bool = False) -> tuple[tuple[str, bytes], ...]:
    """The harness package's source files (read once per process: every bundle carries a copy)."""
    files = (
        (str(path.relative_to(HARNESS_SOURCE.parent)), path.read_bytes())
        for path in sorted(HARNESS_SOURCE.rglob("*.py"))
        if "__pycache__" not in path.parts
    )
    return tuple((name, data) for name, data in files if pool or name not in POOL_ONLY)


def bundle_files(
    task: TaskDefinition, submission_code: str, spec: dict[str, Any], key_hex: str, job_script: str
) -> list[tuple[str, bytes, int]]:
    """Every file of a bundle as (path relative to the bundle root, content, mode)."""
    files = [(name, data, 0o644) for name, data in _harness_files()]
    for name, content in sorted(task.files.items()):
        text = submission_code if content == SUBMISSION_PLACEHOLDER else content
        files.append((f"task/{name}", text.encode(), 0o644))
    files.append(("spec.json", (json.dumps(spec, indent=1) + "\n").encode(), 0o644))
    files.append(("key", (key_hex + "\n").encode(), 0o600))
    files.append(("job.sh", job_script.encode(), 0o755))
    # created empty, so a `tail -F` started at submit follows an existing file (GNU tail polls for a
    # missing one) and Slurm appends to it
    files.append(("output.log", b"", 0o600))
    return files


def pool_files(pool_spec: dict[str, Any], job_script: str) -> list[tuple[str, bytes, int]]:
    """Every file of a warm pool's folder: the harness, pool.json, the job script, an empty output.log,
    and the folders the gateway and the pool runner hand runs through (kept by empty dotfiles, which the
    runner ignores)."""
    files = [(name, data, 0o644) for name, data in _harness_files(pool=True)]
    files.append(("pool.json", (json.dumps(pool_spec, indent=1) + "\n").encode(), 0o644))
    files.append(("job.sh", job_script.encode(), 0o755))
    files.append(("output.log", b"", 0o600))
    files += [(f"{folder}/.keep", b"", 0o600) for folder in ("inbox", "taken", "done")]
    return files


def bundle_archive(files: list[tuple[str, bytes, int]], root: str) -> bytes:
    """An uncompressed tar of ``files`` under the folder ``root`` (mode 0700: keys and code are private),
    built in memory: one SSH command unpacks it into the work folder and submits."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders = sorted({str(PurePosixPath(name).parent) for name, _, _ in files} - {"."})
        for folder in [root, *(f"{root}/{f}" for f in folders)]:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, 0
            tar.addfile(info)
        for name, data, mode in files:
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def stage_bundle(staging: Path, files: list[tuple[str, bytes, int]]) -> None:
    """Write a complete bundle into the folder ``staging``, which must not exist yet."""
    staging.mkdir(parents=True, exist_ok=False)
    for name, data, mode in files:
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
