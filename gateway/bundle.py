"""The job bundle: one object derives every path in it, and staging writes it to a local folder."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gateway.tasks import SUBMISSION_PLACEHOLDER, TaskDefinition

HARNESS_SOURCE = Path(__file__).resolve().parent.parent / "harness"


@dataclass(frozen=True)
class BundlePaths:
    """Paths inside ``<workdir>/<run-id>/`` on the site (POSIX paths: the site may not be this machine)."""

    root: PurePosixPath

    @classmethod
    def under(cls, workdir: str | PurePosixPath, run_id: str) -> BundlePaths:
        return cls(PurePosixPath(workdir) / run_id)

    @property
    def job_script(self) -> PurePosixPath:
        return self.root / "job.sh"

    @property
    def harness(self) -> PurePosixPath:
        return self.root / "harness"

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
    run_id: str, mode: str, task: TaskDefinition, secret_seed: int | None = None
) -> dict[str, Any]:
    """spec.json as docs/architecture.md defines it."""
    return {
        "run_id": run_id,
        "mode": mode,
        "lang": task.lang,
        "main": task.main,
        "tests": task.tests,
        "benchmarks": task.benchmarks,
        "ranking_by": task.ranking_by,
        "seed": secret_seed,
        "timeouts": task.timeouts,
    }


def stage_bundle(
    staging: Path,
    task: TaskDefinition,
    submission_code: str,
    spec: dict[str, Any],
    key_hex: str,
    job_script: str,
) -> None:
    """Write a complete bundle into the empty folder ``staging`` (then copied or uploaded as it is)."""
    paths = BundlePaths(PurePosixPath(staging))
    staging.mkdir(parents=True, exist_ok=False)
    shutil.copytree(
        HARNESS_SOURCE,
        paths.harness,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    task_dir = Path(paths.task)
    task_dir.mkdir()
    for name, content in sorted(task.files.items()):
        text = submission_code if content == SUBMISSION_PLACEHOLDER else content
        (task_dir / name).write_text(text, encoding="utf-8")
    Path(paths.spec).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    fd = os.open(paths.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as key_file:
        key_file.write(key_hex + "\n")
    Path(paths.job_script).write_text(job_script, encoding="utf-8")
