"""A run's processes started before the run exists (a warm pool's next run, harness/pool.py).

The built-in evaluator starts as ``harness.evaluator standby`` from the pool's harness: it starts the
user-code process and its twin, each in a sandbox of its own bound to this standby's empty task folder
(``<tmp>/slot/task``) and compilers' cache, and imports torch, touching no GPU. When the run arrives the
runner copies the run's task files into that folder (a bind mount shows what is added to its source
later), then sends the evaluator the run's modes, tests files and environment; from there the run goes on
as one whose evaluator it started itself. Each standby serves one run and dies with it: fresh processes
and a fresh sandbox per run, nothing shared with the run before.

Only the built-in evaluator of a one-GPU run can use one: a task's own evaluator, a CUDA program and a
multi-GPU run's ranks are started for their run as always (``usable``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.process import EvaluatorProcess, kill_group, run_env
from harness.protocol import CACHE_DIR_ENV
from harness.sandbox import ENV_VAR as ISOLATION_ENV
from harness.sandbox import Isolation, module_command

MAX_PHASES = 2  # the most phases of a mode (harness.runner.PHASES): one result pipe each


class Standby:
    """The evaluator of the next run and its sandboxed processes, started and waiting for that run."""

    def __init__(self, harness_root: Path, tmp: Path, isolation: Isolation) -> None:
        """``harness_root`` holds the harness the processes run (the pool's copy), ``tmp`` is the run's
        own temporary folder (removed with it)."""
        self.slot = tmp / "slot"
        self.task = self.slot / "task"
        self.cache = self.slot / "cache"
        self.task.mkdir(parents=True, mode=0o700)
        self.cache.mkdir(mode=0o700)
        pipes = [os.pipe() for _ in range(MAX_PHASES)]
        write_fds = [w for _, w in pipes]
        self.result_fds = [r for r, _ in pipes]
        argv = module_command(
            sys.executable, str(harness_root), "harness.evaluator", ["standby"], isolated=True
        )
        env = dict(os.environ) | {
            "HARNESS_PHASE_FDS": ",".join(map(str, write_fds)),
            ISOLATION_ENV: isolation.to_env(),
            CACHE_DIR_ENV: str(self.cache),
        }
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.task,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=write_fds,
                start_new_session=True,  # its own process group: a timeout kills everything it started
            )
        except BaseException:
            for fd in [*write_fds, *self.result_fds]:
                os.close(fd)
            raise
        for fd in write_fds:
            os.close(fd)
        self.attached = False

    @staticmethod
    def usable(spec: dict[str, Any], own_evaluator: bool) -> bool:
        return not own_evaluator and (spec.get("gpus") or 1) == 1

    def attach(
        self,
        bundle: Path,
        spec: dict[str, Any],
        phases: list[str],
        files: list[Path],
        extra_env: dict[str, str],
    ) -> EvaluatorProcess:
        """The run handed over: its task files copied into the slot, its phases and environment sent; the
        evaluator to follow as one the runner started."""
        self.attached = True
        shutil.copytree(bundle / "task", self.task, symlinks=True, dirs_exist_ok=True)
        env = run_env(spec) | extra_env | {CACHE_DIR_ENV: str(self.cache)}
        message = {"argv": ["+".join(phases), *map(str, files)], "env": env}
        for fd in self.result_fds[len(phases) :]:
            os.close(fd)  # the evaluator closes its ends of these too
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.close()
        except OSError:
            pass  # it ended already: its phases fail with what it said on stderr
        return EvaluatorProcess.adopt(self.proc, self.result_fds[: len(phases)], phases, spec)

    def close(self) -> None:
        """Not used for its run: ended with everything it started (once attached, its run ends it)."""
        if self.attached:
            return
        self.attached = True
        kill_group(self.proc.pid)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        for fd in self.result_fds:
            os.close(fd)
