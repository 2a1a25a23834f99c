"""The built-in evaluator, GPU MODE's interface: ``python -m harness.evaluator <mode> <tests-file>``.

It is trusted: it never imports the submission. It imports the task's reference.py, starts
``harness.usercode`` (the only process holding user code) and asks it to run custom_kernel on inputs it
names by seed. Pass/fail, the statistics and the key/value lines are all decided here, from the raw
sample of each call and from outputs checked against inputs this process generated itself, so a
submission cannot write to the result channel, patch these functions or see the expected output.

Several phases can share one process pair (torch loads once): ``test+benchmark <tests> <benchmarks>``
with one result descriptor per phase in HARNESS_PHASE_FDS; each is closed when its phase ends.
A warm pool starts it as ``standby`` before its run exists (harness/standby.py): it starts its user-code
processes and imports torch, then reads the run's modes, tests files and environment as one JSON line.
Exit codes: 0 ok, 112 validation failed, 113 bad test spec.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import sys
from pathlib import Path

from harness import ncu
from harness.judge import Cases, Judge, emit
from harness.protocol import (
    CACHE_DIR_ENV,
    EXIT_BAD_TEST_SPEC,
    EXIT_VALIDATION_FAILED,
    FILE_NAME_ENV,
    ProtocolError,
    parse_test_spec,
)
from harness.ranks import MAX_WORLD_SIZE, takes_rank
from harness.sandbox import ENV_VAR as ISOLATION_ENV
from harness.sandbox import Isolation, SandboxError
from harness.usercode_client import UserCodeClient

MODES = ("test", "benchmark", "leaderboard", "profile")
WORLD_SIZE_ENV = "HARNESS_WORLD_SIZE"  # the runner's word: how many ranks (spec.json's gpus)
STANDBY = "standby"  # started before its run (a warm pool's, harness/standby.py): the run comes on stdin


def make_non_dumpable() -> None:
    """The user-code process runs as the same user: without this it could ptrace this process or open its
    fds."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
        except (OSError, AttributeError):
            pass


def read_cases(path: str) -> Cases:
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    return [(line, dict(parse_test_spec(line))) for line in lines]


def world_size(value: str | None) -> int:
    """The ranks of a run (HARNESS_WORLD_SIZE, from spec.json's ``gpus``): 1 when unset."""
    ranks = int(value or 1)
    if not 1 <= ranks <= MAX_WORLD_SIZE:
        raise ValueError(f"{WORLD_SIZE_ENV}={value}: a run takes 1 to {MAX_WORLD_SIZE} GPUs")
    return ranks


def _inputs_take_rank() -> bool:
    """Whether the task's generate_input takes ``rank`` and ``world_size`` (reference-kernels' distributed
    tasks); a reference that does not import says so later, in the judge."""
    try:
        from reference import generate_input
    except Exception:
        return True
    return takes_rank(generate_input)


def main(argv: list[str]) -> int:
    phase_fds = os.environ.pop("HARNESS_PHASE_FDS", None) or os.environ["POPCORN_FD"]
    isolation = os.environ.pop(ISOLATION_ENV, None)
    os.environ.pop("POPCORN_FD", None)
    fds = [int(fd) for fd in phase_fds.split(",")]
    for fd in fds:
        os.set_inheritable(fd, False)  # the user-code process must never hold a result channel
    make_non_dumpable()
    sandbox = Isolation.from_env(isolation)
    started: tuple[UserCodeClient, UserCodeClient | None] | None = None
    if argv[1:] == [STANDBY]:
        try:
            started = _clients(sandbox, os.environ.pop(CACHE_DIR_ENV, None), ranks=1, timed=False)
            argv, started = _await_run(argv[0], sandbox, started[0])
        except (SandboxError, OSError, ValueError) as exc:
            print(f"cannot start the submission's sandbox or read the run: {exc}", file=sys.stderr)
            return 2
    modes = argv[1].split("+") if len(argv) > 1 else []
    if started is not None and len(modes) <= len(fds):
        for fd in fds[len(modes) :]:
            os.close(fd)  # a standby has a channel for the most phases a run has
        fds = fds[: len(modes)]
    ncu_report = os.environ.pop(ncu.REPORT_ENV, None)
    file_name = os.environ.pop(FILE_NAME_ENV, None)
    cache = os.environ.pop(CACHE_DIR_ENV, None)
    if (
        not modes
        or any(m not in MODES for m in modes)
        or len(argv) != 2 + len(modes)
        or len(fds) != len(modes)
    ):
        print(f"usage: evaluator {'|'.join(MODES)}[+...] <tests-file>... (or {STANDBY})", file=sys.stderr)
        return EXIT_BAD_TEST_SPEC
    try:
        phases = [read_cases(path) for path in argv[2:]]
        seed = os.environ.pop("POPCORN_SEED", None)
        secret = int(seed) if seed else None
        limit = os.environ.get("HARNESS_MAX_TIME_S")
        max_time_s = float(limit) if limit else None
    except (OSError, ValueError, ProtocolError) as exc:
        print(f"bad tests file or seed: {exc}", file=sys.stderr)
        return EXIT_BAD_TEST_SPEC
    sys.path.insert(0, os.getcwd())
    if started is None:
        try:
            # a multi-GPU task's ranks: one user-code process each, all in one sandbox (harness/ranks.py);
            # a task whose inputs know no rank runs one process that sees the job's GPUs
            ranks = world_size(os.environ.pop(WORLD_SIZE_ENV, None))
            if ranks > 1 and not _inputs_take_rank():
                ranks = 1
            started = _clients(sandbox, cache, ranks, times(modes))
        except (SandboxError, OSError, ValueError) as exc:
            print(f"cannot start the submission's sandbox: {exc}", file=sys.stderr)
            return 2
    usercode, twin = started
    return _judge(usercode, twin, modes, phases, fds, secret, max_time_s, file_name, ncu_report)


def times(modes: list[str]) -> bool:
    """Whether any of these phases times calls (and needs the twin)."""
    return any(mode in ("benchmark", "leaderboard") for mode in modes)


def _clients(
    sandbox: Isolation, cache: str | None, ranks: int, timed: bool
) -> tuple[UserCodeClient, UserCodeClient | None]:
    """The submission's process (it loads torch while this process does the same), and for phases that
    time its twin, in a sandbox of its own and never given the submission: the fixed cost of each timed
    request."""
    usercode = UserCodeClient(sandbox, cache=cache, ranks=ranks)
    try:
        twin = UserCodeClient(sandbox, ranks=ranks) if timed else None
    except BaseException:
        usercode.close()
        raise
    return usercode, twin


def _await_run(
    program: str, sandbox: Isolation, usercode: UserCodeClient
) -> tuple[list[str], tuple[UserCodeClient, UserCodeClient | None]]:
    """A standby's run (harness/standby.py): torch loaded meanwhile, then one JSON line on stdin naming
    the run's modes and tests files and its environment; the argv a started evaluator would have had, and
    the run's user-code process with the twin its phases need. The twin starts once this process has
    loaded torch, unless a run is waiting already (on a busy node its import would slow the run's)."""
    import torch  # noqa: F401 (the point of a standby: imported before its run arrives, no GPU touched)

    twin = None if select.select([sys.stdin], [], [], 0)[0] else UserCodeClient(sandbox)
    message = json.loads(sys.stdin.readline() or "null")
    if (
        not isinstance(message, dict)
        or not isinstance(message.get("argv"), list)
        or not isinstance(message.get("env"), dict)
    ):
        raise ValueError("a standby evaluator's run is a JSON object with argv and env")
    os.environ.update({str(k): str(v) for k, v in message["env"].items()})
    argv = [program, *map(str, message["argv"])]
    timed = len(argv) > 1 and times(argv[1].split("+"))
    if twin is not None and not timed:
        twin.kill()
        twin = None
    elif twin is None and timed:
        twin = UserCodeClient(sandbox)
    return argv, (usercode, twin)


def _judge(
    usercode: UserCodeClient,
    twin: UserCodeClient | None,
    modes: list[str],
    phases: list[Cases],
    fds: list[int],
    secret: int | None,
    max_time_s: float | None,
    file_name: str | None,
    ncu_report: str | None,
) -> int:
    # this process only checks while the user-code process's calls are timed: its OpenMP threads must not
    # spin on the cores the timed call needs
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    ok = True
    try:
        judge = Judge(usercode, twin, secret, max_time_s, file_name)
        judge.ncu_report = ncu_report
        for mode, cases, fd in zip(modes, phases, fds, strict=True):
            if not ok:
                os.close(fd)  # a later phase does not run after a failed one
                continue
            with os.fdopen(fd, "w", buffering=1) as out:
                if usercode.ranks > 1:
                    emit(out, "ranks", usercode.ranks)  # every rank's output is checked, the slowest timed
                ok = judge.test(out, cases) if mode == "test" else judge.benchmark(out, mode, cases)
                emit(out, "check", "pass" if ok else "fail")
    finally:
        usercode.close()
        if twin is not None:
            twin.close()
    return 0 if ok else EXIT_VALIDATION_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
