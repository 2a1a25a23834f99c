"""The built-in local site: runs the rendered job script as a subprocess on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

from gateway.config.sites import KeepBundles
from gateway.core.errors import BackendError
from gateway.core.states import JobState
from gateway.running.backends.base import (
    MAX_RESULT_BYTES,
    JobHandle,
    JobRequest,
    JobStatus,
    PartitionLoad,
    script_context,
)
from gateway.running.bundle import LOG_NAMES, BundlePaths, bundle_files, is_run_folder, stage_bundle
from gateway.running.jobscript import TemplateRenderer
from gateway.running.transport.local import LocalTransport

# What a local job inherits of the worker's environment: never its database URL, tokens or SSH agent (the
# runner's own; the submission's sandbox gets less still, harness/sandbox.py).
JOB_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
JOB_ENVIRONMENT_PREFIXES = ("CUDA_", "NVIDIA_", "HIP_", "ROCR_")


def job_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name in JOB_ENVIRONMENT or name.startswith(JOB_ENVIRONMENT_PREFIXES)
    }


class LocalBackend:
    name = "local"

    def __init__(self, workdir: Path, renderer: TemplateRenderer, python: str = sys.executable) -> None:
        self._workdir = workdir
        self._renderer = renderer
        self._python = python
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._files = LocalTransport()
        self._handles: dict[str, JobHandle] = {}

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]:
        return [await self._start(request) for request in requests]

    async def _start(self, request: JobRequest) -> JobHandle:
        isolation = request.site.isolation
        if isolation.kind == "bubblewrap" and shutil.which(isolation.command or "bwrap") is None:
            raise BackendError(
                "the local site confines submitted code with bubblewrap, which is not installed here: "
                "install it (apt install bubblewrap), or set GATEWAY_LOCAL_ISOLATION=none to run your own "
                "code unconfined"
            )
        paths = BundlePaths.under(str(self._workdir), request.run_id)
        script = self._renderer.render(
            self._renderer.template_for(request.site.name, "local"),
            script_context(request, paths, self._python),
        )
        try:
            output_fd = await asyncio.to_thread(self._stage, request, paths, script)
            try:
                proc = await asyncio.create_subprocess_exec(
                    "/bin/bash",
                    str(paths.job_script),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output_fd,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=str(paths.root),
                    env=job_environment(),
                    start_new_session=True,
                )
            finally:
                os.close(output_fd)
        except OSError as exc:
            raise BackendError(f"local site: cannot start run {request.run_id}: {exc}") from exc
        job_id = f"local-{proc.pid}"
        self._procs[job_id] = proc
        handle = self._handles[request.run_id] = JobHandle(request.run_id, job_id, paths)
        return handle

    def _stage(self, request: JobRequest, paths: BundlePaths, script: str) -> int:
        """Write the bundle; return a descriptor of its output file for the job's stdout and stderr."""
        self._workdir.mkdir(parents=True, exist_ok=True)
        root = Path(paths.root)
        if root.exists():  # a requeued attempt starts from a fresh bundle
            shutil.rmtree(root)
        files = bundle_files(request.task, request.submission_code, request.spec, request.key_hex, script)
        stage_bundle(root, files)
        return os.open(paths.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        states: dict[str, JobStatus] = {}
        for handle in handles:
            proc = self._procs.get(handle.job_id)
            if proc is None:
                states[handle.job_id] = JobStatus(JobState.UNKNOWN, "not started by this process")
            elif proc.returncode is None:
                states[handle.job_id] = JobStatus(JobState.RUNNING)
            elif proc.returncode == 0:
                states[handle.job_id] = JobStatus(JobState.COMPLETED)
            elif proc.returncode < 0:
                states[handle.job_id] = JobStatus(JobState.CANCELLED, f"signal {-proc.returncode}")
            else:
                states[handle.job_id] = JobStatus(JobState.FAILED, f"exit code {proc.returncode}")
        return states

    async def wait(self, handle: JobHandle) -> None:
        """Local processes can be awaited directly, so the monitor need not poll them."""
        proc = self._procs.get(handle.job_id)
        if proc is not None:
            await proc.wait()

    async def cancel(self, handles: Sequence[JobHandle]) -> None:
        for handle in handles:
            self._kill(handle.job_id)

    def _kill(self, job_id: str) -> None:
        proc = self._procs.get(job_id)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)

    async def find(self, requests: Sequence[JobRequest]) -> dict[str, JobHandle]:
        """Only this process's own jobs can be found (a local job does not outlive a restarted gateway
        that would look for it: it is started again)."""
        wanted = {r.run_id for r in requests}
        return {run_id: handle for run_id, handle in self._handles.items() if run_id in wanted}

    async def load(self) -> dict[str, PartitionLoad]:
        running = sum(1 for proc in self._procs.values() if proc.returncode is None)
        return {"local": PartitionLoad("local", True, 0, running, "this machine")}

    def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        return self._files.stream_lines(["tail", "-n", "+1", "-F", "--", str(handle.bundle.output)])

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        return await asyncio.to_thread(_read_capped, Path(handle.bundle.result), MAX_RESULT_BYTES)

    async def fetch_file(self, handle: JobHandle, name: str, max_bytes: int) -> bytes | None:
        return await asyncio.to_thread(_read_capped, Path(handle.bundle.root / name), max_bytes)

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 64 * 1024) -> str:
        data = await asyncio.to_thread(_read_capped, Path(handle.bundle.output), max_bytes)
        return (data or b"").decode(errors="replace")

    async def remove(self, run_ids: Sequence[str], keep: KeepBundles = "none") -> None:
        roots = [Path(BundlePaths.under(str(self._workdir), run_id).root) for run_id in run_ids]
        try:
            await asyncio.to_thread(_remove_bundles, roots, keep)
        except OSError as exc:
            raise BackendError(f"local site: cannot remove bundles: {exc}") from exc

    async def bundles(self) -> dict[str, float]:
        return await asyncio.to_thread(_list_bundles, self._workdir)

    async def close(self) -> None:
        for job_id in self._procs:
            self._kill(job_id)


def _remove_bundles(roots: list[Path], keep: KeepBundles) -> None:
    for root in roots:
        if not root.is_dir():
            continue
        if keep == "none":
            shutil.rmtree(root)
            continue
        for child in root.iterdir():
            if child.name in LOG_NAMES:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def _list_bundles(workdir: Path) -> dict[str, float]:
    if not workdir.is_dir():
        return {}
    return {
        child.name: child.lstat().st_mtime
        for child in workdir.iterdir()
        if is_run_folder(child.name) and child.is_dir() and not child.is_symlink()
    }


def _read_capped(path: Path, max_bytes: int) -> bytes | None:
    try:
        with path.open("rb") as handle:
            return handle.read(max_bytes)
    except FileNotFoundError:
        return None
