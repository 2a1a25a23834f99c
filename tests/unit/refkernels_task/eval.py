# mypy: ignore-errors
# (written untyped on purpose, as reference-kernels tasks are)
"""A task's own evaluator in reference-kernels' style (written for these tests): it imports the submission
itself, reads POPCORN_FD and the tests file, and writes the key/value lines GPU MODE's runner expects."""

import math
import os
import sys
import time

from reference import check_implementation, generate_input
from submission import custom_kernel
from utils import set_seed


def cases(path):
    for line in open(path).read().splitlines():
        if line.strip():
            yield line, {k.strip(): int(v) for k, v in (p.split(":") for p in line.split(";"))}


def main():
    fd = os.getenv("POPCORN_FD")
    if not fd or len(sys.argv) < 3:
        return 111
    mode, tests = sys.argv[1], list(cases(sys.argv[2]))
    set_seed(int(os.getenv("POPCORN_SEED") or 42))
    with os.fdopen(int(fd), "w") as out:
        log = lambda k, v: print(f"{k}: {v}", file=out, flush=True)  # noqa: E731
        passed = True
        if mode == "test":
            log("test-count", len(tests))
            for i, (spec, args) in enumerate(tests):
                log(f"test.{i}.spec", spec)
                data = generate_input(**args)
                ok, error = check_implementation(data, custom_kernel(data))
                log(f"test.{i}.status", "pass" if ok else "fail")
                if not ok:
                    log(f"test.{i}.error", error)
                    passed = False
        else:
            log("benchmark-count", len(tests))
            for i, (spec, args) in enumerate(tests):
                log(f"benchmark.{i}.spec", spec)
                data = generate_input(**args)
                durations = []
                for _ in range(20):
                    start = time.perf_counter_ns()
                    custom_kernel(data)
                    durations.append(time.perf_counter_ns() - start)
                mean = sum(durations) / len(durations)
                std = math.sqrt(sum((d - mean) ** 2 for d in durations) / (len(durations) - 1))
                for key, value in (("runs", 20), ("mean", mean), ("std", std), ("err", std / math.sqrt(20))):
                    log(f"benchmark.{i}.{key}", value)  # no best/worst, as their leaderboard mode
        log("check", "pass" if passed else "fail")
        return 0 if passed else 112


if __name__ == "__main__":
    sys.exit(main())
