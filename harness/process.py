"""Evaluator processes as the runner drives them: pipes drained with caps, phases ended by time limits.

The built-in evaluator serves every phase of a run from one process (torch loads once), with one result
pipe per phase: a phase ends when the evaluator closes its pipe, and its time limit counts from the end of
the phase before. A task's own evaluator (``config.main``) runs once per phase, GPU MODE's interface.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.phase_result import PhaseResult
from harness.protocol import EXIT_VALIDATION_FAILED, PROGRESS_PREFIX, HarnessError, parse_kv
from harness.sandbox import ENV_VAR as ISOLATION_ENV
from harness.sandbox import Isolation, compiler_caches, interpreter, module_command, wrap

TAIL_BYTES = 8 * 1024
RESULT_PIPE_LIMIT = 1024 * 1024
DEFAULT_TIMEOUT_S = 180.0


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


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class EvaluatorProcess:
    """One evaluator process serving ``phases`` in order, each under its own time limit."""

    def __init__(
        self,
        bundle: Path,
        spec: dict[str, Any],
        phases: list[str],
        files: list[Path],
        isolation: Isolation,
        extra_env: dict[str, str] | None = None,
        *,
        program: list[str] | None = None,
        cache: Path | None = None,
    ) -> None:
        """``extra_env`` is for the built-in evaluator only (the user's name of the submitted file, where
        ncu's report goes, the compilers' cache). A task's own evaluator is ``main`` run by python, or
        ``program`` (one nvcc built, harness/compile.py); ``cache`` is the run's folder for the compilers'
        caches it may write."""
        pipes = [os.pipe() for _ in phases]
        write_fds = [w for _, w in pipes]
        task = str(bundle / "task")
        main = spec.get("main")
        # the result channel (POPCORN_FD) and, for a secret rerun, GPU MODE's POPCORN_SEED
        protocol_env = {"POPCORN_FD": str(write_fds[0])} | run_env(spec)
        if main or program:
            # a task's own evaluator imports the submission itself: all of it runs in the sandbox, reading
            # its task, the harness and its tests file
            # (its own environment is made whole here, so PYTHONPATH may name the harness for it)
            protocol_env["PYTHONPATH"] = str(bundle)
            command = program or [interpreter(isolation), "-B", "-s", str(main)]
            argv = [*command, phases[0], str(files[0])]
            argv, env = wrap(
                isolation,
                argv,
                readable=[str(bundle / "harness"), task, str(files[0].parent)],
                cwd=task,
                env=protocol_env | (compiler_caches(str(cache)) if cache else {}),
                scratch=str(files[0].parent),
                protected=(str(bundle.parent),),  # the work folder: every run's bundle
                writable=(str(cache),) if cache else (),
            )
        else:
            # the built-in evaluator is trusted and stays outside: it puts the submission's own process,
            # harness/usercode.py, in the sandbox
            argv = module_command(
                sys.executable, str(bundle), "harness.evaluator", ["+".join(phases), *map(str, files)],
                isolated=True,
            )  # fmt: skip
            # (the job's own environment: its modules' library paths and toolkits; -I ignores PYTHON*)
            env = dict(os.environ) | protocol_env | (extra_env or {})
            env["HARNESS_PHASE_FDS"] = ",".join(map(str, write_fds))
            env["HARNESS_WORLD_SIZE"] = str(spec.get("gpus") or 1)  # its ranks (harness/ranks.py)
            env[ISOLATION_ENV] = isolation.to_env()
        proc = subprocess.Popen(
            argv,
            cwd=task,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=write_fds,
            start_new_session=True,  # its own process group: a timeout kills everything it started
        )
        for fd in write_fds:
            os.close(fd)
        self._follow(proc, [r for r, _ in pipes], phases, spec)

    @classmethod
    def adopt(
        cls, proc: subprocess.Popen[bytes], result_fds: list[int], phases: list[str], spec: dict[str, Any]
    ) -> EvaluatorProcess:
        """An evaluator started before its run (a standby, harness/standby.py), with stdout and stderr
        pipes and ``result_fds`` the read ends of its phases' result pipes; its limits count from now."""
        adopted = cls.__new__(cls)
        adopted._follow(proc, result_fds, phases, spec)
        return adopted

    def _follow(
        self, proc: subprocess.Popen[bytes], result_fds: list[int], phases: list[str], spec: dict[str, Any]
    ) -> None:
        self.phases = phases
        self.timeouts = [float(spec["timeouts"].get(name, DEFAULT_TIMEOUT_S)) for name in phases]
        self.started = time.monotonic()
        self.proc = proc
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.results = [_Drain(r, RESULT_PIPE_LIMIT, keep_tail=False) for r in result_fds]
        self.stdout = _Drain(os.dup(self.proc.stdout.fileno()), TAIL_BYTES, keep_tail=True)
        self.stderr = _Drain(os.dup(self.proc.stderr.fileno()), TAIL_BYTES, keep_tail=True)
        self.proc.stdout.close()
        self.proc.stderr.close()
        for drain in [*self.results, self.stdout, self.stderr]:
            drain.start()

    def finish_phase(self, index: int) -> PhaseResult:
        """Wait for phase ``index`` (its result pipe closed) within its limit; kill everything on timeout."""
        last = index == len(self.phases) - 1
        deadline = self.started + self.timeouts[index]
        drain = self.results[index]
        drain.join(max(0.0, deadline - time.monotonic()))
        timed_out = drain.is_alive()
        if not timed_out and last:
            try:
                self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out or last:
            self.stop()
        code = None if timed_out else self.proc.poll()
        kv, problem = _parse(drain)
        if code is None and not timed_out:  # an earlier phase of a process that goes on
            code = 0 if kv.get("check") == "pass" else EXIT_VALIDATION_FAILED
        duration = time.monotonic() - self.started
        self.started = time.monotonic()  # the next phase's limit counts from here
        stderr_tail = self.stderr.text() + (f"\n{PROGRESS_PREFIX}{problem}" if problem else "")
        return PhaseResult(
            name=self.phases[index],
            exit_code=code,
            timed_out=timed_out,
            duration_s=round(duration, 3),
            kv=kv,
            stdout_tail=self.stdout.text()[-TAIL_BYTES:],
            stderr_tail=stderr_tail[-TAIL_BYTES:],
        )

    def stop(self) -> None:
        kill_group(self.proc.pid)  # also any stray children the submission left behind
        self.proc.wait()
        for drain in [*self.results, self.stdout, self.stderr]:
            drain.join(timeout=5)  # a grandchild that escaped the group may hold a pipe open


def run_env(spec: dict[str, Any]) -> dict[str, str]:
    """What an evaluator learns of its run from its environment: GPU MODE's POPCORN_SEED for a secret
    rerun, the time limit per benchmark."""
    env = {}
    if spec.get("seed") is not None:
        env["POPCORN_SEED"] = str(spec["seed"])
    if spec.get("max_time_s") is not None:
        env["HARNESS_MAX_TIME_S"] = str(spec["max_time_s"])
    return env


def _parse(drain: _Drain) -> tuple[dict[str, str], str | None]:
    if drain.overflow:
        return {}, f"result channel rejected: more than {RESULT_PIPE_LIMIT} bytes"
    try:
        return parse_kv(drain.text()), None
    except HarnessError as exc:
        return {}, f"result channel rejected: {exc}"
