"""The trusted judge of the built-in evaluator (harness.evaluator): it asks the user-code process
(harness.usercode, through a UserCodeClient) to run custom_kernel on inputs it names by seed, checks the
outputs against inputs it generated itself, times each case against the twin's fixed cost, and writes the
phase's key/value lines."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from harness import ncu, timing, wire
from harness.protocol import encode_report
from harness.ranks import rank_inputs
from harness.sandbox import Isolation, SandboxError
from harness.usercode_client import Failed, UserCodeClient

BENCHMARK_CHECK_EVERY = 4  # benchmark mode checks a random quarter of the timed outputs; leaderboard all
_perf_ns = time.perf_counter_ns
Cases = list[tuple[str, dict[str, Any]]]  # (the line as given, the parsed case)
Replies = list[tuple[dict[str, Any], list[bytearray]]]  # each rank's reply and its output's bytes


def mix(public: int, secret: int) -> int:
    """A 48-bit seed from a public one and the secret one: neither alone predicts it, and it is one-way,
    so the user-code process, which sees only the result, cannot recover the secret (Cantor pairing, GPU
    MODE's way of combining them, is invertible). A task's own eval.py gets POPCORN_SEED itself."""
    return int.from_bytes(hashlib.sha256(f"{secret}:{public}".encode()).digest()[:6], "big")


def _check(check_implementation: Callable[..., Any], data: Any, output: Any) -> tuple[bool, str]:
    """reference-kernels' checkers return (ok, message), a bool, or an error string ('' = ok)."""
    verdict = check_implementation(data, output)
    if isinstance(verdict, tuple):
        return bool(verdict[0]), str(verdict[1]) if len(verdict) > 1 else ""
    if isinstance(verdict, str):
        return verdict == "", verdict
    return bool(verdict), "" if verdict else "check_implementation returned False"


class Judge:
    def __init__(
        self,
        usercode: UserCodeClient,
        twin: UserCodeClient | None,
        secret: int | None,
        max_time_s: float | None,
        file_name: str | None = None,
    ) -> None:
        """``file_name``: the user's own name of the submitted file, which the user-code process's errors
        show."""
        import torch
        from reference import check_implementation, generate_input

        self.torch = torch
        torch.set_num_threads(1)
        self.usercode = usercode
        self.twin = twin  # never loads the submission: the fixed cost of a request, by this clock
        self.secret = secret
        self.max_time_s = max_time_s
        self.generate_input, self.check_implementation = generate_input, check_implementation
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.load_error: str | None = None
        self.file_name = file_name
        try:
            usercode.request({"op": "load", "file_name": file_name})
        except Failed as exc:
            self.load_error = str(exc)
        self.first_timed_mark = os.environ.get("HARNESS_MARK_FILE")
        self.isolation: Isolation = usercode.isolation
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
        """One call of custom_kernel in the user-code process (every rank's, of a multi-GPU task); its
        output, when asked for, checked here. Returns that process's time of the call (the slowest rank's),
        this process's time of the whole request and the output's bytes (the largest rank's)."""
        ns, wall_ns, replies = self.request(case, timed, check)
        if check:
            self.verify(case, replies)
        return ns, wall_ns, _output_bytes(replies)

    def request(self, case: dict[str, Any], timed: bool, check: bool) -> tuple[float, float, Replies]:
        """One call of custom_kernel on every rank: the slowest rank's time of it (a collective ends when
        its last rank does), this process's time of the whole request, and each rank's reply with the
        output's bytes when ``check``. No rank's time may exceed this process's clock."""
        if self.load_error is not None:
            raise Failed(self.load_error)
        began = _perf_ns()
        replies = self.usercode.request_all({"op": "run", "case": case, "timed": timed, "output": check})
        wall_ns = _perf_ns() - began
        times = []
        for rank, (reply, _) in enumerate(replies):
            ns = reply.get("ns")
            if not isinstance(ns, int | float) or not 0 <= ns <= wall_ns:
                who = "the submission's process" if len(replies) == 1 else f"rank {rank}"
                raise Failed(f"{who} reported {ns!r} ns for a call that took {wall_ns} ns")
            times.append(float(ns))
        return max(times), float(wall_ns), replies

    def verify(self, case: dict[str, Any], replies: Replies) -> None:
        """Every rank's output against the reference's check of that rank's input of ``case`` (of a
        multi-GPU task ``generate_input(rank=, world_size=, **case)``, made here, on the rank's GPU)."""
        world_size = len(replies)
        for rank, (reply, blobs) in enumerate(replies):
            who = "" if world_size == 1 else f"rank {rank}: "
            device = self.device
            if world_size > 1 and device.type == "cuda":
                device = self.torch.device("cuda", rank)
            try:
                output = wire.decode(reply.get("value"), blobs, device)
            except wire.WireError as exc:
                raise Failed(f"{who}the output could not be read: {exc}") from None
            if world_size == 1:
                data = self.generate_input(**case)
            else:
                data = rank_inputs(self.generate_input, rank, world_size, **case)
            try:
                ok, message = _check(self.check_implementation, data, output)
            except Exception as exc:
                raise Failed(f"{who}checking the output failed ({type(exc).__name__}: {exc}); is it the "
                             "right type and shape?") from None  # fmt: skip
            if not ok:
                raise Failed(who + (message or "the output does not match the reference"))

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
                    reply, _ = self.usercode.request({"op": "profile", "case": self.seeded(case)})
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
        """Each benchmark once more in a user-code process of its own under Nsight Compute (``ncu`` in front
        of it in the sandbox, writing ``report``): ``done``, or ``error: ...`` saying why there is no
        report."""
        found = ncu.find_ncu()
        if self.usercode.ranks > 1:
            return "error: Nsight Compute runs single-GPU tasks only (this one has several ranks)"
        if found is None:
            return "error: ncu is not on the job's PATH"
        try:
            usercode = UserCodeClient(
                self.isolation,
                prefix=ncu.ncu_command(found, report),
                readable=[ncu.ncu_folder(found)],
                writable=(str(Path(report).parent),),
                cache=self.usercode.cache,  # the submission's extensions as built in its first load
            )
        except (SandboxError, OSError) as exc:
            return one_line(f"error: ncu could not start: {exc}")
        try:
            usercode.request({"op": "load", "file_name": self.file_name})
            for _, case in cases:
                request = {"op": "run", "case": self.seeded(_without_floor(case)), "timed": False}
                usercode.request(request | {"output": False})
        except Failed as exc:
            return one_line(f"error: under ncu: {exc}")
        finally:
            usercode.close()
        return "done"

    def time_case(self, mode: str, case: dict[str, Any]) -> tuple[timing.Stats, timing.Verdict]:
        """The statistics of a case's timed calls and whose clock they are (``worker``, or ``evaluator``
        where the worker's figures fell below the evaluator's bounds beyond the tolerance)."""
        # correct first; also compiles and warms caches, and tells the size of an output
        _, _, output_bytes = self.call(case, timed=False, check=True)
        self.usercode.request(
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
                ns, wall_ns, replies = self.request(fresh, timed=True, check=check)
                output_bytes = _output_bytes(replies) if check else output_bytes
                after = before if before is not None else self.twin_request(case, check, output_bytes, ns)
                if check:
                    self.verify(fresh, replies)
            except Failed as exc:
                raise Failed(f"timed run {len(samples)}: {exc}") from None
            samples.append(ns)
            walls.append(wall_ns)
            fixed.append(after)
            if timing.should_stop(samples, (_perf_ns() - began) / 1e9, max_time):
                ranked, verdict = timing.reconcile(samples, walls, fixed)
                return timing.summarise(ranked), verdict


def _output_bytes(replies: Replies) -> int:
    """The bytes of the largest rank's output (each twin rank returns as many)."""
    return max(sum(len(blob) for blob in blobs) for _, blobs in replies)


def _without_floor(case: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k != "floor_ns"}


def emit(out: IO[str], key: str, value: object) -> None:
    out.write(f"{key}: {value}\n")


def one_line(text: str) -> str:
    return " ".join(text.split())[:4000]
