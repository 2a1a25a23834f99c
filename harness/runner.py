"""The trusted runner: ``python -m harness run <bundle>``.

It reads spec.json, reads and deletes the per-run key before any user code runs, makes itself
non-dumpable, runs each phase's evaluator in its own process group with a dedicated result pipe and a
time limit, caps everything it reads, and writes result.json signed with the key. Its stdout carries only
progress lines for the gateway to show; results are never taken from there.
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
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
from dataclasses import asdict
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
DEFAULT_TIMEOUT_S = 180.0
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


class Phase:
    """One evaluator process: started (perhaps early, behind a gate), then finished under its time limit."""

    def __init__(self, bundle: Path, spec: dict[str, Any], name: str, tests_file: Path, gated: bool) -> None:
        self.name = name
        self.timeout = float(spec["timeouts"].get(name, DEFAULT_TIMEOUT_S))
        main = spec.get("main")
        argv = [sys.executable, main] if main else [sys.executable, "-m", "harness.evaluator"]
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env["POPCORN_FD"] = str(write_fd)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bundle), env.get("PYTHONPATH")]))
        # no user site-packages, and no .pyc files written that a later phase would load
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if spec.get("seed") is not None:
            env["POPCORN_SEED"] = str(spec["seed"])
        pass_fds = [write_fd]
        self.gate_fd: int | None = None
        if gated:
            gate_read, self.gate_fd = os.pipe()
            env["HARNESS_GATE_FD"] = str(gate_read)
            pass_fds.append(gate_read)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*argv, name, str(tests_file)],
            cwd=bundle / "task",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            start_new_session=True,  # its own process group: a timeout kills everything it started
        )
        for fd in pass_fds:
            os.close(fd)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.drains = [
            _Drain(read_fd, RESULT_PIPE_LIMIT, keep_tail=False),
            _Drain(os.dup(self.proc.stdout.fileno()), TAIL_BYTES, keep_tail=True),
            _Drain(os.dup(self.proc.stderr.fileno()), TAIL_BYTES, keep_tail=True),
        ]
        self.proc.stdout.close()
        self.proc.stderr.close()
        for drain in self.drains:
            drain.start()

    def open_gate(self) -> None:
        """Let an early-started evaluator begin; its time limit counts from here."""
        if self.gate_fd is not None:
            try:
                os.write(self.gate_fd, b"1")
            except OSError:
                pass  # it died while loading; finish() reports how
            os.close(self.gate_fd)
            self.gate_fd = None
        self.started = time.monotonic()

    def cancel(self) -> None:
        """Stop an early-started evaluator whose phase will not run (no user code ran in it)."""
        if self.gate_fd is not None:
            os.close(self.gate_fd)
            self.gate_fd = None
        _kill_group(self.proc.pid)
        self.proc.wait()
        for drain in self.drains:
            drain.join(timeout=5)

    def finish(self) -> PhaseResult:
        if self.gate_fd is not None:
            self.open_gate()
        timed_out = False
        try:
            self.proc.wait(timeout=max(0.0, self.started + self.timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(self.proc.pid)  # also any stray children the submission left behind
        self.proc.wait()
        for drain in self.drains:
            drain.join(timeout=5)  # a grandchild that escaped the group may hold a pipe open
        duration = time.monotonic() - self.started
        result_text, stdout_tail, stderr_tail = (d.text() for d in self.drains)
        try:
            kv = parse_kv(result_text)
        except HarnessError as exc:
            kv = {}
            stderr_tail += f"\n{PROGRESS_PREFIX}result channel rejected: {exc}"
        if self.drains[0].overflow:
            kv = {}
            stderr_tail += f"\n{PROGRESS_PREFIX}result channel rejected: more than {RESULT_PIPE_LIMIT} bytes"
        return PhaseResult(
            name=self.name,
            exit_code=None if timed_out else self.proc.returncode,
            timed_out=timed_out,
            duration_s=round(duration, 3),
            kv=kv,
            stdout_tail=stdout_tail[-TAIL_BYTES:],
            stderr_tail=stderr_tail[-TAIL_BYTES:],
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


def load_spec(bundle: Path) -> dict[str, Any]:
    """spec.json, checked enough that the phases can run; ValueError says what is wrong."""
    try:
        spec = json.loads((bundle / "spec.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read spec.json: {exc}") from exc
    if not isinstance(spec, dict):
        raise ValueError("spec.json is not an object")
    if not isinstance(spec.get("run_id"), str) or spec.get("mode") not in PHASES:
        raise ValueError(f"spec.json needs a run_id and a mode in {sorted(PHASES)}")
    for name in ("tests", "benchmarks"):
        cases = spec.get(name, [])
        if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
            raise ValueError(f"spec.json: {name} must be a list of objects")
    timeouts = spec.get("timeouts") or {}
    if not isinstance(timeouts, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in timeouts.values()
    ):
        raise ValueError("spec.json: timeouts must map phases to positive numbers of seconds")
    main = spec.get("main")
    if main is not None and (
        not isinstance(main, str) or Path(main).is_absolute() or ".." in Path(main).parts
    ):
        raise ValueError("spec.json: main must be a path inside task/")
    if spec.get("seed") is not None and not isinstance(spec["seed"], int):
        raise ValueError("spec.json: seed must be an integer or null")
    return spec | {"timeouts": timeouts}


def take_key(bundle: Path) -> bytes:
    """Read the run key and delete the file, whatever happens, before any user code runs."""
    key_path = bundle / "key"
    try:
        return load_key_hex(key_path.read_text())
    finally:
        key_path.unlink(missing_ok=True)


def snapshot(bundle: Path) -> dict[str, str]:
    """Digest of every file a later phase would import: a submission must not rewrite reference.py or the
    harness for the phase after its own (it runs as the same user, so this is detection, not prevention)."""
    digests = {}
    for top in ("harness", "task"):
        for path in sorted((bundle / top).rglob("*")):
            if path.is_file() or path.is_symlink():
                digest = hashlib.sha256(path.read_bytes() if path.is_file() else b"link").hexdigest()
                digests[str(path.relative_to(bundle))] = digest
    return digests


def _summary(result: PhaseResult) -> str:
    try:
        if result.passed and result.name == "test":
            tests = result.tests()
            return f"{sum(t.passed for t in tests)}/{len(tests)} passed"
        if result.passed:
            return f"{len(result.benchmarks())} benchmarks timed"
    except HarnessError as exc:
        return f"unreadable results: {exc}"
    return f"failed: {result.failure_message()}"


def run_phases(bundle: Path, spec: dict[str, Any], tmp: Path) -> tuple[list[PhaseResult], str | None]:
    names = PHASES[spec["mode"]]
    files = {}
    for name in names:
        cases = spec.get("tests", []) if name == "test" else spec.get("benchmarks", [])
        files[name] = tmp / f"{name}.txt"
        files[name].write_text("".join(format_test_spec(c) + "\n" for c in cases))
    before = snapshot(bundle)
    results: list[PhaseResult] = []
    # the built-in evaluator of the next phase starts now and loads torch (seconds on a CPU) while this
    # phase runs; a task's own evaluator knows nothing of the gate, so it starts when its phase does
    early = spec.get("main") is None
    upcoming = Phase(bundle, spec, names[0], files[names[0]], gated=False)
    for i, name in enumerate(names):
        current = upcoming
        nxt = names[i + 1] if i + 1 < len(names) else None
        if nxt is not None and early:
            upcoming = Phase(bundle, spec, nxt, files[nxt], gated=True)
        progress(f"phase {name} started")
        result = current.finish()
        results.append(result)
        progress(f"phase {name} finished in {result.duration_s:.1f} s: {_summary(result)}")
        after = snapshot(bundle)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if changed:
            if nxt is not None and early:
                upcoming.cancel()
            return results, f"the submission changed files of the bundle: {', '.join(changed[:5])}"
        if nxt is None:
            break
        if not result.passed:
            if early:
                upcoming.cancel()
            progress(f"skipping {', '.join(names[i + 1 :])}: phase {name} did not pass")
            break
        if not early:
            upcoming = Phase(bundle, spec, nxt, files[nxt], gated=False)
    return results, None


def run_bundle(bundle: Path) -> int:
    payload: dict[str, Any] = {
        "version": RESULT_VERSION,
        "run_id": "",
        "mode": "",
        "system": {},
        "phases": [],
        "error": None,
    }
    spec: dict[str, Any] | None = None
    try:
        spec = load_spec(bundle)
        payload["run_id"], payload["mode"] = spec["run_id"], spec["mode"]
    except ValueError as exc:
        payload["error"] = f"bad spec.json: {exc}"
    try:
        key = take_key(bundle)
    except (OSError, HarnessError) as exc:
        progress(f"cannot read the run key in {bundle}: {exc}; no authenticated result can be written")
        return 2
    make_non_dumpable()
    if spec is not None:
        progress(f"run {spec['run_id']}: {spec['mode']} on {socket.gethostname()}")
        with tempfile.TemporaryDirectory(prefix="harness-") as tmp:
            try:
                phases, payload["error"] = run_phases(bundle, spec, Path(tmp))
            except OSError as exc:  # the bundle itself is broken (no task/, unwritable temp dir, ...)
                phases, payload["error"] = [], f"the runner failed: {type(exc).__name__}: {exc}"
        payload["phases"] = [asdict(p) for p in phases]
    else:
        progress(payload["error"])
    payload["system"] = system_info()
    write_result(bundle, payload, key)
    progress("result written" + (f" with error: {payload['error']}" if payload["error"] else ""))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m harness run <bundle-dir>", file=sys.stderr)
        return 2
    return run_bundle(Path(argv[1]).resolve())
