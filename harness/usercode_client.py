"""The evaluator's client of one user-code process (harness.usercode): it starts the process in the
sandbox, reached over two private pipes (it never sees a result descriptor), and sends it requests.
``Failed`` is a case that failed, with a message for the competitor."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from harness import wire
from harness.sandbox import Isolation, compiler_caches, interpreter, module_command, wrap


class Failed(Exception):
    """A case failed; the message is for the competitor."""


class UserCodeClient:
    """The submission's process, reached over two private pipes (it never sees the result descriptor)."""

    def __init__(
        self,
        isolation: Isolation,
        prefix: list[str] | None = None,
        readable: list[str] | None = None,
        writable: tuple[str, ...] = (),
        cache: str | None = None,
    ) -> None:
        """``prefix`` goes in front of the process's command inside the sandbox (ncu), ``readable`` and
        ``writable`` are the folders it needs beyond the task and the harness (ncu's own, its report's),
        ``cache`` the run's folder for the compilers' caches (inline extensions, Triton), which the twin
        never gets."""
        req_read, self.req_write = os.pipe()
        self.rep_read, rep_write = os.pipe()
        wire.widen(self.req_write)
        wire.widen(self.rep_read)
        task_dir, harness_dir = os.getcwd(), str(Path(__file__).resolve().parent)
        bundle = str(Path(harness_dir).parent)
        self.isolation = isolation
        self.cache = cache
        # unconfined, the process still gets a private scratch folder of its own for HOME and caches
        self.scratch = tempfile.mkdtemp(prefix="harness-usercode-") if not isolation.confined else None
        command = module_command(
            interpreter(isolation),
            bundle,
            "harness.usercode",
            [str(req_read), str(rep_write)],
            isolated=False,
        )
        argv, env = wrap(
            isolation,
            [*(prefix or []), *command],
            readable=[harness_dir, task_dir, *(readable or [])],
            cwd=task_dir,
            env=compiler_caches(cache) if cache else {},
            scratch=self.scratch,
            protected=(str(Path(bundle).parent),),  # the work folder: every run's bundle
            writable=(*writable, *([cache] if cache else [])),
        )
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=task_dir,
            stdin=subprocess.DEVNULL,
            pass_fds=(req_read, rep_write),
        )
        os.close(req_read)
        os.close(rep_write)
        self.dead: str | None = None

    def request(self, header: dict[str, Any]) -> tuple[dict[str, Any], list[bytearray]]:
        if self.dead is not None:
            raise Failed(self.dead)
        try:
            wire.send(self.req_write, header)
            reply, blobs = wire.receive(self.rep_read)
        except (OSError, wire.WireError) as exc:
            try:
                code = self.proc.wait(timeout=1)
                self.dead = f"the submission's process ended unexpectedly ({_how(code)}); see its stderr"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.dead = f"the submission's process broke its channel to the evaluator ({exc})"
            raise Failed(self.dead) from None
        if not reply.get("ok"):
            raise Failed(str(reply.get("error") or "the submission failed"))
        return reply, blobs

    def close(self) -> None:
        if self.dead is None:
            try:
                wire.send(self.req_write, {"op": "exit"})
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _how(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
