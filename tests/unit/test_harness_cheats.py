"""Real cheating submissions through the real runner, evaluator and worker (CPU): each is caught or gains
nothing. The kinds are those that topped GPU MODE's leaderboards before being found."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.protocol import load_key_hex, verify_result
from tests.unit.test_harness_runner import make_bundle, run_bundle, run_runner

HEADER = "import torch\nfrom task import input_t, output_t\n"


def test_a_forged_stream_on_every_fd_then_exit_is_caught(tmp_path: Path) -> None:
    # the known hole of an in-process evaluator: a whole passing stream, then os._exit(0)
    forged = "".join(
        f"{line}\\n"
        for line in ["test-count: 2", "test.0.status: pass", "test.1.status: pass", "check: pass"]
    )
    code = HEADER + (
        "import os\n"
        "for fd in range(3, 256):\n"
        "    try:\n"
        f"        os.write(fd, b'{forged}')\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    )
    result = run_bundle(tmp_path, code)
    assert not result.passed and result.phases[0].kv["check"] == "fail"
    assert "ended unexpectedly (exit code 0)" in (result.failure_message or "")


def test_patching_the_evaluator_and_the_checker_gains_nothing(tmp_path: Path) -> None:
    code = HEADER + (
        "import sys, harness.judge, harness.timing, reference, utils\n"
        "harness.judge._check = lambda *a: (True, '')\n"
        "reference.check_implementation = lambda *a: (True, '')\n"
        "utils.match_reference = lambda *a, **k: (True, '')\n"
        "harness.timing.summarise = None\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    return a - b\n"
    )
    result = run_bundle(tmp_path, code)
    assert not result.passed and "mismatch found" in (result.failure_message or "")


@pytest.mark.parametrize(
    "key",
    ["a.data_ptr()", "id(a)", "None"],  # pointer, id, and 'batch and skip' (compute once, replay)
)
def test_output_caches_are_caught_in_the_leaderboard(tmp_path: Path, key: str) -> None:
    code = HEADER + (
        "CACHE = {}\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        f"    key = {key}\n"
        "    if key not in CACHE:\n"
        "        CACHE[key] = a + b\n"
        "    return CACHE[key].clone()\n"
    )
    result = run_bundle(tmp_path, code, "leaderboard", tests=[{"size": 127, "seed": 1}])
    assert not result.passed and result.score("geom") is None
    assert "timed run" in (result.failure_message or "") or "mismatch" in (result.failure_message or "")


def test_a_cache_keyed_on_content_never_hits(tmp_path: Path) -> None:
    code = HEADER + (
        "import sys\n"
        "CACHE = {}\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    key = (a.numel(), float(a.sum()), float(b.sum()))\n"
        "    if key in CACHE:\n"
        "        print('hit', repr(key), file=sys.stderr)\n"
        "        return CACHE[key].clone()\n"
        "    CACHE[key] = a + b\n"
        "    return CACHE[key].clone()\n"
    )
    result = run_bundle(tmp_path, code, "leaderboard")
    assert result.passed, result.failure_message
    # only the untimed warm-up repeats an input (one per benchmark shape); every timed call gets a fresh,
    # unpredictable one, so nothing timed can be replayed
    lines = [line for phase in result.phases for line in phase.stderr_tail.splitlines()]
    hits = {line for line in lines if line.startswith("hit")}
    assert len(hits) <= len(result.benchmarks)


def test_returning_the_input_is_caught(tmp_path: Path) -> None:
    code = HEADER + "def custom_kernel(data: input_t) -> output_t:\n    a, b = data\n    return a.add_(b)\n"
    result = run_bundle(tmp_path, code)
    assert not result.passed and "returned its input" in (result.failure_message or "")


def test_mutating_the_input_gains_nothing(tmp_path: Path) -> None:
    # zeroing b and returning a would be 'a + b' only if the checker read the mutated b
    code = HEADER + (
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    b.zero_()\n"
        "    return a.clone()\n"
    )
    result = run_bundle(tmp_path, code)
    assert not result.passed and "mismatch found" in (result.failure_message or "")


def test_looking_for_the_expected_output_in_memory_finds_nothing(tmp_path: Path) -> None:
    code = HEADER + (
        "import gc\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    mine = {a.data_ptr(), b.data_ptr()}\n"
        "    for obj in gc.get_objects():\n"
        "        if isinstance(obj, torch.Tensor) and obj.shape == a.shape and obj.data_ptr() not in mine:\n"
        "            return obj.clone()\n"
        "    return torch.zeros_like(a)\n"
    )
    result = run_bundle(tmp_path, code)
    assert not result.passed and "mismatch found" in (result.failure_message or "")


def test_writing_result_json_directly_is_overwritten_and_would_not_verify(tmp_path: Path) -> None:
    forged = {"payload": {"version": 1, "run_id": "r-test", "phases": []}, "tag": "00" * 32}
    code = HEADER + (
        "import json\n"
        f"json.dump({forged!r}, open('../result.json', 'w'))\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    return a - b\n"
    )
    bundle, key_hex = make_bundle(tmp_path, code)
    assert run_runner(bundle).returncode == 0
    payload = verify_result(json.loads((bundle / "result.json").read_text()), load_key_hex(key_hex))
    assert payload["phases"][0]["kv"]["check"] == "fail"
    with pytest.raises(Exception, match="tag"):
        verify_result(forged, load_key_hex(key_hex))


SLOW = "    time.sleep(0.002)\n    a, b = data\n    return a + b\n"


@pytest.mark.parametrize(
    "patch",
    [
        "time.perf_counter_ns = lambda: 0\ntime.perf_counter = lambda: 0.0\ntime.time_ns = lambda: 0\n",
        "import statistics, math\nstatistics.mean = lambda xs: 1.0\nmath.sqrt = lambda x: 0.0\n"
        "math.fsum = lambda xs: 1.0\n",
        "import sys\nw = sys.modules['harness.usercode']\nw.time.perf_counter_ns = lambda: 0\n"
        "w.gc.disable = None\nw.timed_call = None\ntorch.cuda.Event.elapsed_time = lambda *a: 0.0\n",
    ],
    ids=["time", "statistics", "worker-module"],
)
def test_patching_timers_or_statistics_gains_nothing(tmp_path: Path, patch: str) -> None:
    code = HEADER + "import time\n" + patch + "def custom_kernel(data: input_t) -> output_t:\n" + SLOW
    result = run_bundle(tmp_path, code, "benchmark", benchmarks=[{"size": 1024, "seed": 3}])
    assert result.passed, result.failure_message
    [bench] = result.benchmarks
    assert bench.mean_ns >= 2e6 and bench.best_ns >= 2e6  # every call really slept 2 ms


def test_work_left_on_another_thread_is_caught(tmp_path: Path) -> None:
    code = HEADER + (
        "import threading, time\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    out = torch.empty_like(a)\n"
        "    def finish():\n"
        "        time.sleep(0.01)\n"
        "        torch.add(a, b, out=out)\n"
        "    threading.Thread(target=finish).start()\n"
        "    return out\n"
    )
    result = run_bundle(tmp_path, code)
    assert not result.passed and "thread(s) running" in (result.failure_message or "")


def test_a_lazy_output_is_caught(tmp_path: Path) -> None:
    code = HEADER + (
        "class Lazy(torch.Tensor):\n"
        "    pass\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    return (a + b).as_subclass(Lazy)\n"
    )
    result = run_bundle(tmp_path, code)
    assert not result.passed and "plain torch.Tensor" in (result.failure_message or "")


def test_a_time_below_the_shape_floor_is_rejected(tmp_path: Path) -> None:
    correct = (Path(__file__).parents[2] / "problems/vectoradd/solutions/correct.py").read_text()
    benchmarks = [{"size": 1024, "seed": 3, "floor_ns": 10**9}]
    result = run_bundle(tmp_path, correct, "leaderboard", benchmarks=benchmarks)
    assert not result.passed and result.score("geom") is None
    assert "below this shape's floor" in (result.failure_message or "")


def test_flooding_stdout_is_capped(tmp_path: Path) -> None:
    code = HEADER + (
        "import sys\n"
        "sys.stdout.write('x' * (20 * 1024 * 1024))\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    return a + b\n"
    )
    result = run_bundle(tmp_path, code)
    assert result.passed, result.failure_message
    assert len(result.phases[0].stdout_tail) <= 8 * 1024


# -- the evaluator's clock bounds what ranks (issue 17, item 3) --------------------------------------------
HONEST_SLEEP = HEADER + "import time\ndef custom_kernel(data: input_t) -> output_t:\n" + SLOW
# finds the worker's timer in the closure cells of its own functions and swaps in a clock at 1/20 speed
CLOCK_CELL = HEADER + (
    "import gc, time, types\n"
    "REAL = time.perf_counter_ns\n"
    "def slow_clock():\n"
    "    return REAL() // 20\n"
    "for fn in gc.get_objects():\n"
    "    if isinstance(fn, types.FunctionType) and fn.__code__.co_filename.endswith('usercode.py'):\n"
    "        for cell in fn.__closure__ or ():\n"
    "            try:\n"
    "                if cell.cell_contents is REAL:\n"
    "                    cell.cell_contents = slow_clock\n"
    "            except ValueError:\n"
    "                pass\n"
    "import time\n"
    "def custom_kernel(data: input_t) -> output_t:\n" + SLOW
)
# swaps the worker's captured generate_input for one that also does the kernel's work (untimed by the
# worker): custom_kernel then only hands back what was computed during generation
IN_GENERATION = HEADER + (
    "import gc, time, types, reference\n"
    "ORIGINAL = reference.generate_input\n"
    "DONE = []\n"
    "def generate_and_compute(**case):\n"
    "    data = ORIGINAL(**case)\n"
    "    time.sleep(0.002)\n"
    "    DONE[:] = [data[0] + data[1]]\n"
    "    return data\n"
    "for fn in gc.get_objects():\n"
    "    if isinstance(fn, types.FunctionType) and fn.__code__.co_filename.endswith('usercode.py'):\n"
    "        for cell in fn.__closure__ or ():\n"
    "            try:\n"
    "                if cell.cell_contents is ORIGINAL:\n"
    "                    cell.cell_contents = generate_and_compute\n"
    "            except (ValueError, NameError):\n"
    "                pass\n"
    "def custom_kernel(data: input_t) -> output_t:\n"
    "    return DONE[0].clone()\n"
)
ONE_SHAPE = [{"size": 1024, "seed": 3}]


def timed(tmp_path: Path, code: str) -> tuple[float, str]:
    result = run_bundle(tmp_path, code, "leaderboard", benchmarks=ONE_SHAPE)
    assert result.passed, result.failure_message
    [bench] = result.benchmarks
    return bench.mean_ns, result.phases[-1].kv["benchmark.0.clock"]


@pytest.mark.parametrize("attack", [CLOCK_CELL, IN_GENERATION], ids=["clock-cell", "work-in-generation"])
def test_hiding_time_from_the_workers_clock_gains_at_most_5_percent(tmp_path: Path, attack: str) -> None:
    # each kernel is timed twice and its faster mean taken: load on two shared cores (make test runs the
    # unit tests beside the dev stack's) only ever adds time, while time an attack hides is hidden in every
    # run; the honest baseline must keep the worker's clock in at least one of its runs
    honest = [timed(tmp_path / f"honest-{i}", HONEST_SLEEP) for i in range(2)]
    attacks = [timed(tmp_path / f"attack-{i}", attack) for i in range(2)]
    assert any(clock == "worker" for _, clock in honest), honest
    honest_mean = min(mean for mean, clock in honest if clock == "worker")
    attack_mean = min(mean for mean, _ in attacks)
    print(f"attack/honest = {attack_mean / honest_mean:.3f} ({attack_mean:.0f} / {honest_mean:.0f} ns)")
    assert all(clock == "evaluator" for _, clock in attacks)
    assert attack_mean >= 0.95 * honest_mean


def test_honest_kernels_keep_the_workers_clock(tmp_path: Path) -> None:
    """An honest kernel's figures stay the worker's. Two retries per kernel: on two shared cores a burst of
    load (a millisecond of fixed cost, as seen in CI) can push one benchmark's median past the bound once;
    a kernel that hides time from the worker's clock is caught on every try (the tests above)."""
    for name in ("correct", "slow"):
        code = (Path(__file__).parents[2] / "problems/vectoradd/solutions" / f"{name}.py").read_text()
        bounds: list[list[str]] = []
        for attempt in range(3):  # the unit tests share the cores with the dev stack's tests (make test)
            result = run_bundle(tmp_path / f"{name}-{attempt}", code, "leaderboard")
            assert result.passed, result.failure_message
            kv = result.phases[-1].kv
            clocks = [kv[f"benchmark.{i}.clock"] for i in range(len(result.benchmarks))]
            if clocks == ["worker", "worker"]:
                break
            bounds.append([kv[f"benchmark.{i}.bound"] for i in range(len(result.benchmarks))])
        else:
            raise AssertionError((name, bounds))


def test_the_fixed_cost_is_measured_where_the_submission_never_is(tmp_path: Path) -> None:
    # the submission, at import, notes its own process and its sibling worker processes (children of the
    # same evaluator); the twin that measures each timed request's fixed cost must never have imported it.
    # Unconfined, so that the submission can see its sibling and write where the test reads: in the
    # sandbox (its own pid namespace, nothing writable outside) it could do neither.
    seen = tmp_path / "seen"
    code = HEADER + (
        "import os\n"
        "workers = []\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        parent = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
        "        cmdline = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
        "        if parent == os.getppid() and b'harness.usercode' in cmdline:\n"
        "            workers.append(int(pid))\n"
        "    except OSError:\n"
        "        pass\n"
        f"open({str(seen)!r}, 'a').write(f'{{os.getpid()}} {{sorted(workers)}}\\n')\n"
        "def custom_kernel(data: input_t) -> output_t:\n"
        "    a, b = data\n"
        "    return a + b\n"
    )
    result = run_bundle(tmp_path, code, "leaderboard", benchmarks=ONE_SHAPE, isolation="none")
    assert result.passed, result.failure_message
    [line] = seen.read_text().splitlines()  # imported once, by one process
    me, workers = line.split(" ", 1)
    others = [pid for pid in eval(workers) if pid != int(me)]
    assert len(others) == 1, line  # the twin was running, and never imported it
    # and it measured a fixed cost; whether an honest kernel keeps its clock under load is
    # test_honest_kernels_keep_the_workers_clock's question (with its retry), not this one's
    fixed = re.search(r"fixed cost (\d+) ns", result.phases[-1].kv["benchmark.0.bound"])
    assert fixed is not None and int(fixed.group(1)) > 0, result.phases[-1].kv["benchmark.0.bound"]
