"""The pool runner (a warm pool's long-lived Slurm job): ``python -u -B -I <pooldir>/harness/__main__.py pool
<pooldir> [--isolation ...]``.

``<pooldir>`` (``<workdir>/pool-<id>/``) holds ``pool.json`` (``pool_id``, ``idle_s``, ``max_lifetime_s``)
and ``inbox/``. The gateway unpacks a run's bundle to ``<workdir>/<run_id>/`` as for a job of its own, then
creates ``inbox/<run_id>`` (renamed into place). The pool claims the oldest entry by renaming it to
``taken/<run_id>``, runs that bundle exactly as ``harness run`` would (the same checks, key, sandbox, signed
result.json and progress lines, appended to the run's own output.log) in a forked runner of its own
session, then writes ``done/<run_id>`` (JSON: run_id, started, ended, exit_code). One run at a time.

Nothing of a run outlives it: the pool is the child subreaper of everything a run starts, so after the run
it kills whatever the run left (an evaluator, a stray daemon of an unconfined run) and removes the run's
temporary folder; the submission's own processes and /tmp die with its sandbox's namespaces. The pool
process itself never imports torch or user code and holds no GPU context.

It ends itself after ``idle_s`` without an inbox entry, or takes no run once ``max_lifetime_s`` has passed
since its start (``[harness] pool ended: idle`` / ``: lifetime``, exit 0); on SIGTERM it kills the run in
progress (no done file: that run never finished) and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.protocol import POOL_ENDED, POOL_READY, PROGRESS_PREFIX, RUN_ID
from harness.reaper import become_subreaper, kill_children, reap
from harness.runner import PHASES, make_non_dumpable, parse_args, run_bundle
from harness.sandbox import Isolation, SandboxError
from harness.standby import Standby
from harness.sysinfo import system_info

POLL_S = 0.02  # how often the inbox is looked at, and a running run's end
PHASE_LIMIT_S = 180.0  # a phase without a limit in spec.json (harness.process's default)
COMPILE_LIMIT_S = 300.0  # a lang: cu run's build without one (harness.compile's default)
RUN_SLACK_S = 60.0  # beyond the sum of a run's limits: its runner's own work (sysinfo, the result)


class PoolError(Exception):
    """pool.json or the pool's folder is unusable; the message says what to fix."""


@dataclass(frozen=True)
class PoolConfig:
    pool_id: str
    idle_s: float
    max_lifetime_s: float

    @classmethod
    def load(cls, pooldir: Path) -> PoolConfig:
        try:
            data = json.loads((pooldir / "pool.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PoolError(f"cannot read {pooldir / 'pool.json'}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("pool_id"), str):
            raise PoolError("pool.json needs a pool_id (a string)")
        numbers = [data.get("idle_s"), data.get("max_lifetime_s")]
        if not all(isinstance(n, int | float) and not isinstance(n, bool) and n > 0 for n in numbers):
            raise PoolError("pool.json: idle_s and max_lifetime_s must be positive numbers of seconds")
        return cls(data["pool_id"], float(data["idle_s"]), float(data["max_lifetime_s"]))


def say(message: str) -> None:
    """A line of the pool's own output (its job's output.log)."""
    print(PROGRESS_PREFIX + message, flush=True)


def oldest_entry(inbox: Path) -> str | None:
    """The inbox entry that arrived first (by its change time, then name); dotfiles are entries being made."""
    entries = []
    try:
        with os.scandir(inbox) as found:
            for entry in found:
                if not entry.name.startswith("."):
                    try:
                        entries.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
                    except FileNotFoundError:
                        continue  # taken meanwhile
    except FileNotFoundError:
        return None
    return min(entries)[1] if entries else None


def run_limit_s(bundle: Path) -> float:
    """How long a run may take in all: its phases' limits (and a build's) plus slack. The runner ends
    each phase at its own limit; this bounds a runner that hangs anyway."""
    try:
        spec = json.loads((bundle / "spec.json").read_text(encoding="utf-8"))
        timeouts = spec.get("timeouts") or {}
        phases = PHASES.get(spec.get("mode"), ["test"])
        limits = [_seconds(timeouts.get(name), PHASE_LIMIT_S) for name in phases]
        if spec.get("lang") == "cu":
            limits.append(_seconds(timeouts.get("compile"), COMPILE_LIMIT_S))
        return sum(limits) + RUN_SLACK_S
    except (OSError, ValueError, AttributeError, TypeError):
        return RUN_SLACK_S  # a spec the runner refuses at once


def _seconds(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return default


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class NextRunner:
    """A forked runner waiting for its run, its evaluator and sandboxes started (harness/standby.py)."""

    pid: int
    channel: int  # the pool writes the run id here, once
    tmp: Path  # the run's temporary folder: its standby's slot, TMPDIR of all its processes


class Pool:
    """One pool's loop: claim, run, record, until idle, lifetime or SIGTERM."""

    def __init__(self, pooldir: Path, isolation: Isolation, config: PoolConfig) -> None:
        self.pooldir, self.isolation, self.config = pooldir, isolation, config
        self.inbox, self.taken, self.done = (pooldir / name for name in ("inbox", "taken", "done"))
        self.started = time.monotonic()
        self.stopping = False
        self.runner_pid: int | None = None
        self.next: NextRunner | None = None
        self.system = system_info()  # the node's facts for every run's result (nvidia-smi takes a while)
        self.tmp_root = Path(tempfile.mkdtemp(prefix="harness-pool-"))

    def serve(self) -> str:
        """Runs until the pool ends; returns why (idle, lifetime, terminated)."""
        for folder in (self.taken, self.done):
            folder.mkdir(exist_ok=True)
        if not self.inbox.is_dir():
            raise PoolError(f"{self.inbox} is not a folder (the gateway makes it with the pool)")
        signal.signal(signal.SIGTERM, self._terminate)
        idle_since = time.monotonic()
        try:
            self.next = self.prestart()
            say(POOL_READY)
            while not self.stopping:
                now = time.monotonic()
                if now - self.started >= self.config.max_lifetime_s:
                    return "lifetime"
                run_id = oldest_entry(self.inbox)
                if run_id is None:
                    if now - idle_since >= self.config.idle_s:
                        return "idle"
                    time.sleep(POLL_S)
                    continue
                self.take(run_id)
                idle_since = time.monotonic()
                if self.next is None and not self.stopping:
                    self.next = self.prestart()
            return "terminated"
        finally:
            kill_children()  # the next run's runner and its standby
            shutil.rmtree(self.tmp_root, ignore_errors=True)

    def prestart(self) -> NextRunner:
        """The next run's runner, forked now: it starts its evaluator and sandboxes, then waits for a run."""
        tmp = Path(tempfile.mkdtemp(prefix="run-", dir=self.tmp_root))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(write)
            _runner_child(read, self.pooldir, self.isolation, tmp, self.system)  # never returns
        os.close(read)
        return NextRunner(pid, write, tmp)

    def take(self, run_id: str) -> None:
        """Claim ``run_id`` and run it; an entry that names no bundle is moved aside with a line saying so."""
        try:
            os.rename(self.inbox / run_id, self.taken / run_id)
        except FileNotFoundError:
            return  # gone meanwhile
        bundle = self.pooldir.parent / run_id
        if not RUN_ID.fullmatch(run_id) or bundle.is_symlink() or not bundle.is_dir():
            say(f"ignored inbox entry {run_id!r}: not a run id with a bundle folder beside the pool")
            return
        say(f"run {run_id} taken")
        started = time.time()
        code = self.run(bundle)
        if self.stopping:
            return  # killed with the pool: no record, the gateway runs it again
        record = {"run_id": run_id, "started": started, "ended": time.time(), "exit_code": code}
        write_atomically(self.done / run_id, json.dumps(record) + "\n")
        say(f"run {run_id} done (exit code {code})")

    def run(self, bundle: Path) -> int:
        """The bundle run by the waiting runner; its exit code (negative: a signal)."""
        runner, self.next = self.next or self.prestart(), None
        self.runner_pid = runner.pid
        limit = run_limit_s(bundle)
        deadline = time.monotonic() + limit
        status: int | None = None
        try:
            try:
                os.write(runner.channel, bundle.name.encode() + b"\n")
            except OSError:
                pass  # the runner is gone: its status says how
            os.close(runner.channel)
            while status is None:
                status = reap().get(runner.pid)
                if status is None:
                    if self.stopping or time.monotonic() > deadline:
                        _kill_session(runner.pid)
                        if not self.stopping:
                            say(f"run in {bundle.name} killed after its limit of {limit:.0f} s")
                    time.sleep(POLL_S)
        finally:
            self.runner_pid = None
            kill_children()  # what the run left behind (an evaluator of a killed runner, a daemon)
            shutil.rmtree(runner.tmp, ignore_errors=True)
        return os.waitstatus_to_exitcode(status)

    def _terminate(self, signum: int, frame: object) -> None:
        self.stopping = True
        if self.runner_pid is not None:
            _kill_session(self.runner_pid)


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _runner_child(
    channel: int, pooldir: Path, isolation: Isolation, tmp: Path, system: dict[str, Any]
) -> None:
    """In the forked child: a session of its own, temporary files in the run's folder, the run's evaluator
    started; then, once the run's id arrives, output into the run's output.log and the runner exactly as
    ``harness run`` does it."""
    code = 70
    standby = None
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        os.environ["TMPDIR"] = str(tmp)
        tempfile.tempdir = str(tmp)
        try:
            standby = Standby(pooldir, tmp, isolation)
        except OSError as exc:  # the run starts its own then
            say(f"could not start the next run's evaluator: {exc}")
        with os.fdopen(channel, "rb") as pool:
            run_id = pool.readline().decode(errors="replace").strip()
        if not run_id:
            code = 0
            return  # the pool ended
        bundle = pooldir.parent / run_id
        log = os.open(bundle / "output.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(bundle)
        code = run_bundle(bundle, isolation, standby, system)
    except BaseException as exc:  # whatever happens, the pool must go on
        print(f"{PROGRESS_PREFIX}the runner failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if standby is not None:
            standby.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> int:
    try:
        pooldir, isolation = parse_args(argv, command="pool")
        config = PoolConfig.load(pooldir)
    except (argparse.ArgumentError, SandboxError, PoolError) as exc:
        print(f"usage: python -m harness pool <pool-dir> [--isolation KIND ...]: {exc}", file=sys.stderr)
        return 2
    make_non_dumpable()
    become_subreaper()
    try:
        reason = Pool(pooldir, isolation, config).serve()
    except PoolError as exc:
        say(f"pool failed: {exc}")
        return 2
    say(f"{POOL_ENDED}: {reason}")
    return 0
