"""The trusted runner: ``python -m harness run <bundle>``.

It reads spec.json, reads and deletes the per-run key before any user code runs, makes itself
non-dumpable, runs each phase's evaluator in its own process group with a dedicated result pipe and a
time limit, caps everything it reads, and writes result.json signed with the key. Its stdout carries only
progress lines for the gateway to show; results are never taken from there.
"""

from __future__ import annotations

import collections
import ctypes
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.protocol import (
    PROGRESS_PREFIX,
    RESULT_VERSION,
    HarnessError,
    PhaseResult,
    format_test_spec,
    load_key_hex,
    parse_kv,
    sign_result,
)

TAIL_BYTES = 8 * 1024
RESULT_PIPE_LIMIT = 1024 * 1024
PHASES = {"test": ["test"], "benchmark": ["test", "benchmark"], "leaderboard": ["test", "leaderboard"]}


def progress(message: str) -> None:
    print(PROGRESS_PREFIX + message, flush=True)


def make_non_dumpable() -> None:
    """No ptrace or core dump of this process by user code running as the same user."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
        except (OSError, AttributeError):
            progress("warning: could not make the runner non-dumpable")


class _Drain(threading.Thread):
    """Reads a pipe to its end, keeping at most ``limit`` bytes (the head or the tail)."""

    def __init__(self, fd: int, limit: int, keep_tail: bool) -> None:
        super().__init__(daemon=True)
        self.fd, self.limit, self.keep_tail = fd, limit, keep_tail
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.overflow = False

    def run(self) -> None:
        with os.fdopen(self.fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                if not self.keep_tail and self.size >= self.limit:
                    self.overflow = True
                    continue  # keep reading so the writer never blocks, but drop the excess
                self.chunks.append(chunk)
                self.size += len(chunk)
                while self.keep_tail and self.size - len(self.chunks[0]) >= self.limit:
                    self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        data = b"".join(self.chunks)
        data = data[-self.limit :] if self.keep_tail else data[: self.limit]
        return data.decode(errors="replace")


def run_phase(bundle: Path, spec: dict[str, Any], phase: str, tests_file: Path) -> PhaseResult:
    task_dir = bundle / "task"
    main = spec.get("main")
    argv = [sys.executable, main] if main else [sys.executable, "-m", "harness.evaluator"]
    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    env["POPCORN_FD"] = str(write_fd)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bundle), env.get("PYTHONPATH")]))
    if spec.get("seed") is not None:
        env["POPCORN_SEED"] = str(spec["seed"])
    timeout = float(spec.get("timeouts", {}).get(phase, 180))
    started = time.monotonic()
    proc = subprocess.Popen(
        [*argv, phase, str(tests_file)],
        cwd=task_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(write_fd,),
        start_new_session=True,  # its own process group: a timeout kills everything it started
    )
    os.close(write_fd)
    assert proc.stdout is not None and proc.stderr is not None
    drains = [
        _Drain(read_fd, RESULT_PIPE_LIMIT, keep_tail=False),
        _Drain(os.dup(proc.stdout.fileno()), TAIL_BYTES, keep_tail=True),
        _Drain(os.dup(proc.stderr.fileno()), TAIL_BYTES, keep_tail=True),
    ]
    proc.stdout.close()
    proc.stderr.close()
    for drain in drains:
        drain.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_group(proc.pid)  # also any stray children the submission left behind
    proc.wait()
    for drain in drains:
        drain.join(timeout=5)
    duration = time.monotonic() - started
    result_text, stdout_tail, stderr_tail = (d.text() for d in drains)
    try:
        kv = parse_kv(result_text)
    except HarnessError as exc:
        kv = {}
        stderr_tail += f"\n{PROGRESS_PREFIX}result channel rejected: {exc}"
    if drains[0].overflow:
        kv = {}
        stderr_tail += f"\n{PROGRESS_PREFIX}result channel rejected: more than {RESULT_PIPE_LIMIT} bytes"
    return PhaseResult(
        name=phase,
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        duration_s=round(duration, 3),
        kv=kv,
        stdout_tail=stdout_tail,
        stderr_tail=stderr_tail,
    )


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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


def write_result(bundle: Path, payload: dict[str, Any], key: bytes) -> None:
    document = sign_result(payload, key)
    tmp = bundle / ".result.json.tmp"
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, bundle / "result.json")


def run_bundle(bundle: Path) -> int:
    key_path = bundle / "key"
    try:
        key = load_key_hex(key_path.read_text())
    except (OSError, HarnessError) as exc:
        progress(f"cannot read the run key {key_path}: {exc}; no result can be written")
        return 2
    finally:
        key_path.unlink(missing_ok=True)  # gone before any user code runs
    make_non_dumpable()
    payload: dict[str, Any] = {
        "version": RESULT_VERSION,
        "run_id": "",
        "mode": "",
        "system": {},
        "phases": [],
        "error": None,
    }
    try:
        spec = json.loads((bundle / "spec.json").read_text())
        payload["run_id"], payload["mode"] = str(spec["run_id"]), str(spec["mode"])
        phases = PHASES[payload["mode"]]
    except (OSError, ValueError, KeyError) as exc:
        payload["error"] = f"spec.json is unreadable: {type(exc).__name__}: {exc}"
        payload["system"] = system_info()
        write_result(bundle, payload, key)
        return 0
    progress(f"run {payload['run_id']}: {payload['mode']} on {socket.gethostname()}")
    with tempfile.TemporaryDirectory(prefix="harness-") as tmp:
        for phase in phases:
            cases = spec["tests"] if phase == "test" else spec["benchmarks"]
            tests_file = Path(tmp) / f"{phase}.txt"
            tests_file.write_text("".join(format_test_spec(c) + "\n" for c in cases))
            progress(f"phase {phase} started ({len(cases)} cases)")
            result = run_phase(bundle, spec, phase, tests_file)
            payload["phases"].append(result.__dict__ | {"kv": result.kv})
            verdict = "passed" if result.passed else f"failed: {result.failure_message()}"
            progress(f"phase {phase} {verdict} in {result.duration_s:.1f} s")
            if not result.passed:
                break
    payload["system"] = system_info()
    write_result(bundle, payload, key)
    progress("result written")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m harness run <bundle-dir>", file=sys.stderr)
        return 2
    return run_bundle(Path(argv[1]).resolve())
