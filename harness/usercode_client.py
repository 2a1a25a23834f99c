"""The evaluator's client of one user-code process (harness.usercode): it starts the process in the
sandbox, reached over two private pipes (it never sees a result descriptor), and sends it requests.
For a multi-GPU task it starts the task's ranks instead (harness.ranks, all in one sandbox), a pair of pipes
each, and sends every request to all of them. ``Failed`` is a case that failed, with a message for the
competitor."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from harness import wire
from harness.sandbox import Isolation, compiler_caches, interpreter, module_command, wrap

COLLECTIVE_TIMEOUT_ENV = "HARNESS_COLLECTIVE_TIMEOUT_S"


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
        ranks: int = 1,
    ) -> None:
        """``prefix`` goes in front of the process's command inside the sandbox (ncu), ``readable`` and
        ``writable`` are the folders it needs beyond the task and the harness (ncu's own, its report's),
        ``cache`` the run's folder for the compilers' caches (inline extensions, Triton), which the twin
        never gets; ``ranks`` the processes of a multi-GPU run (harness.ranks starts them, sharing one
        sandbox)."""
        self.ranks = ranks
        self.req_writes: list[int] = []
        self.rep_reads: list[int] = []
        theirs: list[int] = []  # the ends each rank's process holds: (request read, reply write) per rank
        for _ in range(ranks):
            req_read, req_write = os.pipe()
            rep_read, rep_write = os.pipe()
            wire.widen(req_write)
            wire.widen(rep_read)
            self.req_writes.append(req_write)
            self.rep_reads.append(rep_read)
            theirs += [req_read, rep_write]
        task_dir, harness_dir = os.getcwd(), str(Path(__file__).resolve().parent)
        bundle = str(Path(harness_dir).parent)
        self.isolation = isolation
        self.cache = cache
        # unconfined, the process still gets a private scratch folder of its own for HOME and caches
        self.scratch = tempfile.mkdtemp(prefix="harness-usercode-") if not isolation.confined else None
        module, args = ("harness.usercode", []) if ranks == 1 else ("harness.ranks", [str(ranks)])
        command = module_command(
            interpreter(isolation), bundle, module, [*args, *map(str, theirs)], isolated=False
        )
        argv, env = wrap(
            isolation,
            [*(prefix or []), *command],
            readable=[harness_dir, task_dir, *(readable or [])],
            cwd=task_dir,
            # the compilers' caches, and how long a rank waits for the others in a collective (a test's
            # short limit; 120 s by default)
            env=(compiler_caches(cache) if cache else {})
            | {name: os.environ[name] for name in (COLLECTIVE_TIMEOUT_ENV,) if name in os.environ},
            scratch=self.scratch,
            protected=(str(Path(bundle).parent),),  # the work folder: every run's bundle
            writable=(*writable, *([cache] if cache else [])),
        )
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=task_dir,
            stdin=subprocess.DEVNULL,
            pass_fds=tuple(theirs),
        )
        for fd in theirs:
            os.close(fd)
        self.dead: str | None = None

    def request(self, header: dict[str, Any]) -> tuple[dict[str, Any], list[bytearray]]:
        """One request; of a multi-GPU run, every rank's reply merged: the slowest rank's ``ns`` (the
        time of the collective), rank 0's other fields, no output (``request_all`` gives every rank's)."""
        replies = self.request_all(header)
        if self.ranks == 1:
            return replies[0]
        merged = dict(replies[0][0])
        times = [reply.get("ns") for reply, _ in replies]
        if all(isinstance(ns, int | float) for ns in times):
            merged["ns"] = max(times)  # type: ignore[type-var]
        else:
            merged["ns"] = next(ns for ns in times if not isinstance(ns, int | float))
        merged.pop("value", None)
        return merged, []

    def request_all(self, header: dict[str, Any]) -> list[tuple[dict[str, Any], list[bytearray]]]:
        """The request sent to every rank at once (a collective needs them all), then each rank's reply
        in rank order. A rank that fails fails the request; after that a multi-GPU run's ranks are out
        of step (the others may have waited for it in a collective), so none is asked again."""
        if self.dead is not None:
            raise Failed(self.dead)
        replies = []
        sent = 0
        try:
            for fd in self.req_writes:
                wire.send(fd, header)
                sent += 1
            for fd in self.rep_reads:
                replies.append(wire.receive(fd))
        except (OSError, wire.WireError) as exc:
            # of several ranks, the first whose channel broke (not always the first that ended: the others
            # are stopped when one ends)
            rank = sent if sent < self.ranks else len(replies)
            who = (
                "the submission's process"
                if self.ranks == 1
                else f"a rank of the submission (rank {rank}'s channel)"
            )
            try:
                code = self.proc.wait(timeout=1)
                self.dead = f"{who} ended unexpectedly ({_how(code)}); see its stderr"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.dead = f"{who} broke its channel to the evaluator ({exc})"
            raise Failed(self.dead) from None
        for rank, (reply, _) in enumerate(replies):
            if not reply.get("ok"):
                error = str(reply.get("error") or "the submission failed")
                if self.ranks == 1:
                    raise Failed(error)
                self.dead = f"rank {rank}: {error} (a multi-GPU run stops at its first failed request)"
                raise Failed(f"rank {rank}: {error}")
        return replies

    def kill(self) -> None:
        """Ended at once, with its sandbox: a standby's twin that its run does not need."""
        self.dead = "ended by the evaluator"
        self.proc.kill()
        self.close()

    def close(self) -> None:
        if self.dead is None:
            for fd in self.req_writes:
                try:
                    wire.send(fd, {"op": "exit"})
                except OSError:
                    pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in [*self.req_writes, *self.rep_reads]:
            os.close(fd)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _how(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
