"""The built-in evaluator, GPU MODE's interface: ``python -m harness.evaluator <mode> <tests-file>``.

It is trusted: it never imports the submission. It imports the task's reference.py, starts
``harness.worker`` (the only process holding user code) and asks it to run custom_kernel on inputs it
names by seed. Pass/fail, the statistics and the key/value lines are all decided here, from the raw
sample of each call and from outputs checked against inputs this process generated itself, so a
submission cannot write to the result channel, patch these functions or see the expected output.

Several phases can share one process pair (torch loads once): ``test+benchmark <tests> <benchmarks>``
with one result descriptor per phase in HARNESS_PHASE_FDS; each is closed when its phase ends.
Exit codes: 0 ok, 112 validation failed, 113 bad test spec.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from harness import ncu, timing, wire
from harness.protocol import (
    EXIT_BAD_TEST_SPEC,
    EXIT_VALIDATION_FAILED,
    FILE_NAME_ENV,
    ProtocolError,
    encode_report,
    parse_test_spec,
)
from harness.sandbox import ENV_VAR as ISOLATION_ENV
from harness.sandbox import Isolation, SandboxError, interpreter, module_command, wrap

MODES = ("test", "benchmark", "leaderboard", "profile")
BENCHMARK_CHECK_EVERY = 4  # benchmark mode checks a random quarter of the timed outputs; leaderboard all
_perf_ns = time.perf_counter_ns
Cases = list[tuple[str, dict[str, Any]]]  # (the line as given, the parsed case)


def mix(public: int, secret: int) -> int:
    """A 48-bit seed from a public one and the secret one: neither alone predicts it, and it is one-way,
    so the worker, which sees only the result, cannot recover the secret (Cantor pairing, GPU MODE's
    way of combining them, is invertible). A task's own eval.py gets POPCORN_SEED itself."""
    return int.from_bytes(hashlib.sha256(f"{secret}:{public}".encode()).digest()[:6], "big")


def _check(check_implementation: Callable[..., Any], data: Any, output: Any) -> tuple[bool, str]:
    """reference-kernels' checkers return (ok, message), a bool, or an error string ('' = ok)."""
    verdict = check_implementation(data, output)
    if isinstance(verdict, tuple):
        return bool(verdict[0]), str(verdict[1]) if len(verdict) > 1 else ""
    if isinstance(verdict, str):
        return verdict == "", verdict
    return bool(verdict), "" if verdict else "check_implementation returned False"


class Failed(Exception):
    """A case failed; the message is for the competitor."""


class Worker:
    """The submission's process, reached over two private pipes (it never sees the result descriptor)."""

    def __init__(
        self,
        isolation: Isolation,
        prefix: list[str] | None = None,
        readable: list[str] | None = None,
        writable: tuple[str, ...] = (),
    ) -> None:
        """``prefix`` goes in front of the worker's command inside the sandbox (ncu), ``readable`` and
        ``writable`` are the folders it needs beyond the task and the harness (ncu's own, its report's)."""
        req_read, self.req_write = os.pipe()
        self.rep_read, rep_write = os.pipe()
        wire.widen(self.req_write)
        wire.widen(self.rep_read)
        task_dir, harness_dir = os.getcwd(), str(Path(__file__).resolve().parent)
        bundle = str(Path(harness_dir).parent)
        self.isolation = isolation
        # unconfined, the worker still gets a private scratch folder of its own for HOME and caches
        self.scratch = tempfile.mkdtemp(prefix="harness-worker-") if not isolation.confined else None
        command = module_command(
            interpreter(isolation), bundle, "harness.worker", [str(req_read), str(rep_write)], isolated=False
        )
        argv, env = wrap(
            isolation,
            [*(prefix or []), *command],
            readable=[harness_dir, task_dir, *(readable or [])],
            cwd=task_dir,
            env={},
            scratch=self.scratch,
            protected=(str(Path(bundle).parent),),  # the work folder: every run's bundle
            writable=writable,
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


class Judge:
    def __init__(
        self,
        worker: Worker,
        twin: Worker | None,
        secret: int | None,
        max_time_s: float | None,
        file_name: str | None = None,
    ) -> None:
        """``file_name``: the user's own name of the submitted file, which the worker's errors show."""
        import torch
        from reference import check_implementation, generate_input

        self.torch = torch
        torch.set_num_threads(1)
        self.worker = worker
        self.twin = twin  # never loads the submission: the fixed cost of a request, by this clock
        self.secret = secret
        self.max_time_s = max_time_s
        self.generate_input, self.check_implementation = generate_input, check_implementation
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.load_error: str | None = None
        self.file_name = file_name
        try:
            worker.request({"op": "load", "file_name": file_name})
        except Failed as exc:
            self.load_error = str(exc)
        self.first_timed_mark = os.environ.get("HARNESS_MARK_FILE")
        self.isolation: Isolation = worker.isolation
        self.ncu_report: str | None = None  # profile mode under Nsight Compute: the report's path (ncu.py)

    def seeded(self, case: dict[str, Any]) -> dict[str, Any]:
        case = dict(case)
        if "seed" in case and self.secret is not None:
            case["seed"] = mix(int(case["seed"]), self.secret)
        return case

    def twin_request(self, case: dict[str, Any], check: bool, output_bytes: int, spin_ns: float) -> float:
        """The fixed cost of one request of ``case``, by this process's clock, from the twin: a process
        that never imports the submission, running the harness's no-op kernel busy for ``spin_ns`` and
        returning ``output_bytes`` of output when checked. The request's wall time less its no-op's time."""
        if self.twin is None:
            raise Failed("no twin worker: this phase does not time")
        began = _perf_ns()
        reply, _ = self.twin.request({"op": "calibrate", "case": self.fresh(case), "output": check,
                                      "output_bytes": output_bytes, "spin_ns": spin_ns})  # fmt: skip
        return float(_perf_ns() - began) - float(reply["ns"])

    @staticmethod
    def fresh(case: dict[str, Any]) -> dict[str, Any]:
        fresh = dict(case)
        if "seed" in fresh:  # unpredictable inputs every call: no output cache can hit
            fresh["seed"] = secrets.randbits(48)
        return fresh

    def call(self, case: dict[str, Any], timed: bool, check: bool) -> tuple[float, float, int]:
        """One call of custom_kernel in the worker; its output, when asked for, checked here. Returns the
        worker's time of the call, this process's time of the whole request and the output's bytes."""
        ns, wall_ns, reply, blobs = self.request(case, timed, check)
        if check:
            self.verify(case, reply, blobs)
        return ns, wall_ns, sum(len(blob) for blob in blobs)

    def request(
        self, case: dict[str, Any], timed: bool, check: bool
    ) -> tuple[float, float, dict[str, Any], list[bytearray]]:
        """One call of custom_kernel: the worker's time of it, this process's time of the whole request,
        and the reply with the output's bytes when ``check``."""
        if self.load_error is not None:
            raise Failed(self.load_error)
        began = _perf_ns()
        reply, blobs = self.worker.request({"op": "run", "case": case, "timed": timed, "output": check})
        wall_ns = _perf_ns() - began
        ns = reply.get("ns")
        if not isinstance(ns, int | float) or not 0 <= ns <= wall_ns:
            raise Failed(f"the submission's process reported {ns!r} ns for a call that took {wall_ns} ns")
        return float(ns), float(wall_ns), reply, blobs

    def verify(self, case: dict[str, Any], reply: dict[str, Any], blobs: list[bytearray]) -> None:
        """The output in ``reply`` against the reference's check of the input of ``case``."""
        try:
            output = wire.decode(reply.get("value"), blobs, self.device)
        except wire.WireError as exc:
            raise Failed(f"the output could not be read: {exc}") from None
        data = self.generate_input(**case)
        try:
            ok, message = _check(self.check_implementation, data, output)
        except Exception as exc:
            raise Failed(f"checking the output failed ({type(exc).__name__}: {exc}); is it the right "
                         "type and shape?") from None  # fmt: skip
        if not ok:
            raise Failed(message or "the output does not match the reference")

    def test(self, out: IO[str], cases: Cases) -> bool:
        emit(out, "test-count", len(cases))
        ok_all = True
        for i, (spec, case) in enumerate(cases):
            emit(out, f"test.{i}.spec", spec)
            try:
                self.call(self.seeded(case), timed=False, check=True)
                emit(out, f"test.{i}.status", "pass")
            except Failed as exc:
                ok_all = False
                emit(out, f"test.{i}.status", "fail")
                emit(out, f"test.{i}.error", one_line(str(exc)))
        return ok_all

    def benchmark(self, out: IO[str], mode: str, cases: Cases) -> bool:
        emit(out, "benchmark-count", len(cases))
        ok_all = True
        for i, (spec, case) in enumerate(cases):
            emit(out, f"benchmark.{i}.spec", spec)
            floor = float(case.get("floor_ns", timing.DEFAULT_FLOOR_NS[self.device.type]))
            case = _without_floor(case)
            try:
                if mode == "profile":
                    self.call(self.seeded(case), timed=False, check=True)
                    reply, _ = self.worker.request({"op": "profile", "case": self.seeded(case)})
                    # made in the submission's process: capped here, shown as its own text downstream
                    emit(out, f"benchmark.{i}.report", encode_report(str(reply.get("report", ""))))
                    continue
                stats, verdict = self.time_case(mode, self.seeded(case))
                problem = timing.below_floor(stats, floor)
                if problem is not None:
                    raise Failed(problem)
            except Failed as exc:
                ok_all = False
                emit(out, f"benchmark.{i}.status", "fail")
                emit(out, f"benchmark.{i}.error", one_line(str(exc)))
                continue
            for key, value in stats.items():
                emit(out, f"benchmark.{i}.{key}", value)
            emit(out, f"benchmark.{i}.clock", verdict.clock)
            emit(out, f"benchmark.{i}.bound", verdict.describe())
        if mode == "profile" and ok_all and self.ncu_report is not None:
            emit(out, "ncu", self.under_ncu(cases, self.ncu_report))
        return ok_all

    def under_ncu(self, cases: Cases, report: str) -> str:
        """Each benchmark once more in a worker of its own under Nsight Compute (``ncu`` in front of it in
        the sandbox, writing ``report``): ``done``, or ``error: ...`` saying why there is no report."""
        found = ncu.find_ncu()
        if found is None:
            return "error: ncu is not on the job's PATH"
        try:
            worker = Worker(
                self.isolation,
                prefix=ncu.ncu_command(found, report),
                readable=[ncu.ncu_folder(found)],
                writable=(str(Path(report).parent),),
            )
        except (SandboxError, OSError) as exc:
            return one_line(f"error: ncu could not start: {exc}")
        try:
            worker.request({"op": "load", "file_name": self.file_name})
            for _, case in cases:
                request = {"op": "run", "case": self.seeded(_without_floor(case)), "timed": False}
                worker.request(request | {"output": False})
        except Failed as exc:
            return one_line(f"error: under ncu: {exc}")
        finally:
            worker.close()
        return "done"

    def time_case(self, mode: str, case: dict[str, Any]) -> tuple[timing.Stats, timing.Verdict]:
        """The statistics of a case's timed calls and whose clock they are (``worker``, or ``evaluator``
        where the worker's figures fell below the evaluator's bounds beyond the tolerance)."""
        # correct first; also compiles and warms caches, and tells the size of an output
        _, _, output_bytes = self.call(case, timed=False, check=True)
        self.worker.request(
            {"op": "warmup", "case": case, "seconds": timing.WARMUP_S, "min_calls": timing.WARMUP_MIN_CALLS}
        )
        for _ in range(timing.TWIN_WARMUP):
            self.twin_request(case, True, output_bytes, 0.0)
        max_time = self.max_time_s or timing.MAX_TIME_S[mode]
        samples: list[float] = []
        walls: list[float] = []
        fixed: list[float] = []  # each timed request's fixed cost, from the twin request paired with it
        began = _perf_ns()
        while True:
            fresh = self.fresh(case)
            check = mode == "leaderboard" or not samples or secrets.randbelow(BENCHMARK_CHECK_EVERY) == 0
            if self.first_timed_mark:
                Path(self.first_timed_mark).write_text(str(time.time_ns()))
                self.first_timed_mark = None
            # the pair in a random order, the output checked after both: whichever request follows this
            # process's own work (a check, the last pair) meets colder caches, and neither may always be it
            twin_first = bool(samples) and secrets.randbelow(2) == 0  # (busy as long as the last call)
            try:
                before = self.twin_request(case, check, output_bytes, samples[-1]) if twin_first else None
                ns, wall_ns, reply, blobs = self.request(fresh, timed=True, check=check)
                output_bytes = sum(len(blob) for blob in blobs) if check else output_bytes
                after = before if before is not None else self.twin_request(case, check, output_bytes, ns)
                if check:
                    self.verify(fresh, reply, blobs)
            except Failed as exc:
                raise Failed(f"timed run {len(samples)}: {exc}") from None
            samples.append(ns)
            walls.append(wall_ns)
            fixed.append(after)
            if timing.should_stop(samples, (_perf_ns() - began) / 1e9, max_time):
                ranked, verdict = timing.reconcile(samples, walls, fixed)
                return timing.summarise(ranked), verdict


def _without_floor(case: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k != "floor_ns"}


def _how(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def emit(out: IO[str], key: str, value: object) -> None:
    out.write(f"{key}: {value}\n")


def one_line(text: str) -> str:
    return " ".join(text.split())[:4000]


def make_non_dumpable() -> None:
    """The worker runs as the same user: without this it could ptrace this process or open its fds."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
        except (OSError, AttributeError):
            pass


def read_cases(path: str) -> Cases:
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    return [(line, dict(parse_test_spec(line))) for line in lines]


def main(argv: list[str]) -> int:
    phase_fds = os.environ.pop("HARNESS_PHASE_FDS", None) or os.environ["POPCORN_FD"]
    isolation = os.environ.pop(ISOLATION_ENV, None)
    ncu_report = os.environ.pop(ncu.REPORT_ENV, None)
    file_name = os.environ.pop(FILE_NAME_ENV, None)
    os.environ.pop("POPCORN_FD", None)
    fds = [int(fd) for fd in phase_fds.split(",")]
    for fd in fds:
        os.set_inheritable(fd, False)  # the worker must never hold a result channel
    make_non_dumpable()
    modes = argv[1].split("+") if len(argv) > 1 else []
    if (
        not modes
        or any(m not in MODES for m in modes)
        or len(argv) != 2 + len(modes)
        or len(fds) != len(modes)
    ):
        print(f"usage: evaluator {'|'.join(MODES)}[+...] <tests-file>...", file=sys.stderr)
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
    sandbox = Isolation.from_env(isolation)
    try:
        worker = Worker(sandbox)  # loads torch while this process does
        # the same, in a sandbox of its own and never given the submission: the fixed cost of each timed
        # request (only phases that time need it)
        timed = any(mode in ("benchmark", "leaderboard") for mode in modes)
        twin = Worker(sandbox) if timed else None
    except (SandboxError, OSError) as exc:
        print(f"cannot start the submission's sandbox: {exc}", file=sys.stderr)
        return 2
    # this process only checks while the worker's calls are timed: its OpenMP threads must not spin on
    # the cores the timed call needs
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    sys.path.insert(0, os.getcwd())
    judge = Judge(worker, twin, secret, max_time_s, file_name)
    judge.ncu_report = ncu_report
    ok = True
    try:
        for mode, cases, fd in zip(modes, phases, fds, strict=True):
            if not ok:
                os.close(fd)  # a later phase does not run after a failed one
                continue
            with os.fdopen(fd, "w", buffering=1) as out:
                ok = judge.test(out, cases) if mode == "test" else judge.benchmark(out, mode, cases)
                emit(out, "check", "pass" if ok else "fail")
    finally:
        worker.close()
        if twin is not None:
            twin.close()
    return 0 if ok else EXIT_VALIDATION_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
