"""The pool runner end to end: a real pool process over a work folder in tmp_path, real bundles handed to it
through its inbox as the gateway does, real evaluators and sandboxes, on this CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.pool import PoolConfig, PoolError, oldest_entry, run_limit_s
from harness.protocol import load_key_hex, verify_result
from harness.run_result import RunResult
from tests.unit.test_harness_runner import REPO, make_bundle, solution


class PoolProcess:
    """``python -I <pooldir>/harness/__main__.py pool <pooldir>`` as a pool job's script starts it."""

    def __init__(self, workdir: Path, isolation: str = "bubblewrap", **config: float) -> None:
        self.workdir = workdir
        self.pooldir = workdir / "pool-p-test"
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPO / "harness", self.pooldir / "harness", ignore=ignore)
        (self.pooldir / "inbox").mkdir()
        settings = {"pool_id": "p-test", "idle_s": 120, "max_lifetime_s": 600} | config
        (self.pooldir / "pool.json").write_text(json.dumps(settings))
        self.keys: dict[str, str] = {}
        self.output = open(self.pooldir / "output.log", "w+b")  # closed in stop()
        self.tmp = workdir.parent / "node-tmp"  # the node's temporary folder, as the pool sees it
        self.tmp.mkdir()
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-B", "-I", str(self.pooldir / "harness" / "__main__.py"), "pool",
             str(self.pooldir), "--isolation", isolation],
            stdout=self.output, stderr=subprocess.STDOUT, cwd=self.pooldir,
            env=dict(os.environ, TMPDIR=str(self.tmp)),
        )  # fmt: skip

    def log(self) -> str:
        return (self.pooldir / "output.log").read_text()

    def wait_for_line(self, line: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.log():
            assert self.proc.poll() is None or line in self.log(), self.log()
            assert time.monotonic() < deadline, f"no {line!r} in: {self.log()}"
            time.sleep(0.02)

    def submit(self, run_id: str, code: str, tmp_path: Path, **spec: Any) -> Path:
        """The run's bundle unpacked beside the pool, then its inbox entry renamed into place."""
        staged, self.keys[run_id] = make_bundle(tmp_path / f"stage-{run_id}", code, run_id=run_id, **spec)
        bundle = self.workdir / run_id
        staged.rename(bundle)
        (bundle / "output.log").write_text("")
        self.enter(run_id)
        return bundle

    def enter(self, name: str) -> None:
        tmp = self.pooldir / "inbox" / f".{name}.tmp"
        tmp.write_text("")
        os.rename(tmp, self.pooldir / "inbox" / name)

    def done(self, run_id: str, timeout: float = 120) -> dict[str, object]:
        path = self.pooldir / "done" / run_id
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, f"run {run_id} not done: {self.log()}"
            time.sleep(0.02)
        record: dict[str, object] = json.loads(path.read_text())
        return record

    def result(self, run_id: str) -> RunResult:
        document = json.loads((self.workdir / run_id / "result.json").read_text())
        return RunResult.from_payload(verify_result(document, load_key_hex(self.keys[run_id])))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output.close()


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[PoolProcess]:
    (tmp_path / "work").mkdir()
    started = PoolProcess(tmp_path / "work")
    started.wait_for_line("[harness] pool ready")
    yield started
    started.stop()


def test_pool_runs_a_run_as_its_own_job_would(pool: PoolProcess, tmp_path: Path) -> None:
    bundle = pool.submit("r-good", solution("correct"), tmp_path)
    record = pool.done("r-good")
    assert record["run_id"] == "r-good" and record["exit_code"] == 0
    assert isinstance(record["started"], float) and isinstance(record["ended"], float)
    assert 0 < record["ended"] - record["started"] < 120
    result = pool.result("r-good")
    assert result.passed and result.run_id == "r-good", result.failure_message
    assert not (bundle / "key").exists()
    assert (pool.pooldir / "taken" / "r-good").exists() and not (pool.pooldir / "inbox" / "r-good").exists()
    # the run's progress lines go to its own output.log, ending as a job's do; the pool's log names it only
    lines = (bundle / "output.log").read_text().splitlines()
    assert lines and all(line.startswith("[harness] ") for line in lines), lines
    assert lines[-1] == "[harness] result written"
    assert "phase test" not in pool.log() and "[harness] run r-good done (exit code 0)" in pool.log()


def test_timed_runs_in_a_pool_are_timed_against_their_twin(pool: PoolProcess, tmp_path: Path) -> None:
    # the first run's processes were started while the pool was idle, its twin among them; the second is
    # waiting when its processes start: its twin starts when the run asks for one
    pool.submit("r-timed-1", solution("correct"), tmp_path, mode="leaderboard")
    pool.submit("r-timed-2", solution("correct"), tmp_path, mode="benchmark")
    for run_id, mode in (("r-timed-1", "leaderboard"), ("r-timed-2", "benchmark")):
        assert pool.done(run_id)["exit_code"] == 0
        result = pool.result(run_id)
        assert result.passed and [p.name for p in result.phases] == ["test", mode], result.failure_message
        assert len(result.benchmarks) == 2 and all(b.passed and b.runs >= 3 for b in result.benchmarks)


def test_broken_runs_end_as_their_job_would_and_the_pool_goes_on(pool: PoolProcess, tmp_path: Path) -> None:
    pool.submit("r-spec", solution("correct"), tmp_path, mode="nonsense")
    no_key = pool.submit("r-nokey", solution("correct"), tmp_path)
    pool.enter("no-bundle")  # an entry with no bundle folder beside the pool
    pool.enter("bad name")  # not a run id
    (no_key / "key").unlink(missing_ok=True)  # may be read already: then it runs, which is fine too
    assert pool.done("r-spec")["exit_code"] == 0
    bad = pool.result("r-spec")
    assert not bad.passed and "bad spec.json" in (bad.error or "")
    assert pool.done("r-nokey")["exit_code"] in (0, 2)
    pool.submit("r-after", solution("correct"), tmp_path)
    assert pool.done("r-after")["exit_code"] == 0 and pool.result("r-after").passed
    assert not (pool.pooldir / "done" / "no-bundle").exists()
    assert "ignored inbox entry 'no-bundle'" in pool.log() and "ignored inbox entry 'bad name'" in pool.log()
    assert pool.proc.poll() is None


# Each run checks what it can see: the first leaves a file in its temporary folder and a detached process
# (and makes sure it sees them itself, so the check works), the next must see neither.
LEAVER = """
import os, subprocess, sys, tempfile
from task import input_t, output_t

MARK = "pool-leftover-" + "marker"
LEFT = os.path.join(tempfile.gettempdir(), "left-by-the-last-run")

def visible():
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if MARK.encode() in f.read():
                    procs.append(pid)
        except OSError:
            pass
    return os.path.exists(LEFT), procs

if LEAVES:
    open(LEFT, "w").write("secret")
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", MARK], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time
    time.sleep(0.3)
SEEN = visible()

def custom_kernel(data: input_t) -> output_t:
    file_seen, processes = SEEN
    if LEAVES and not (file_seen and processes):
        raise RuntimeError(f"the run cannot see what it left: {SEEN}")
    if not LEAVES and (file_seen or processes):
        raise RuntimeError(f"left by the run before: file {file_seen}, processes {processes}")
    a, b = data
    return a + b
"""


def leftover_processes() -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"pool-leftover-marker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("isolation", ["bubblewrap", "none"])
def test_a_run_sees_nothing_of_the_run_before(tmp_path: Path, isolation: str) -> None:
    (tmp_path / "work").mkdir()
    pool = PoolProcess(tmp_path / "work", isolation)
    try:
        pool.wait_for_line("[harness] pool ready")
        pool.submit("r-first", LEAVER.replace("LEAVES", "True"), tmp_path)
        pool.submit("r-second", LEAVER.replace("LEAVES", "False"), tmp_path)
        first, second = pool.done("r-first"), pool.done("r-second")
        assert first["exit_code"] == second["exit_code"] == 0
        assert pool.result("r-first").passed, pool.result("r-first").failure_message
        assert pool.result("r-second").passed, pool.result("r-second").failure_message
        assert not leftover_processes()
        # of the runs' temporary folders only the next run's is left, started and waiting
        assert len(list(pool.tmp.glob("harness-pool-*/run-*"))) == 1
    finally:
        pool.stop()


def test_the_pool_ends_when_idle_and_removes_its_temporary_folder(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    pool = PoolProcess(tmp_path / "work", idle_s=0.5)
    try:
        assert pool.proc.wait(timeout=30) == 0
        assert pool.log().splitlines()[-2:] == ["[harness] pool ready", "[harness] pool ended: idle"]
        assert not list(pool.tmp.iterdir())
    finally:
        pool.stop()


def test_the_pool_takes_no_run_after_its_lifetime(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    pool = PoolProcess(tmp_path / "work", max_lifetime_s=0.3)
    try:
        assert pool.proc.wait(timeout=30) == 0
        assert pool.log().splitlines()[-1] == "[harness] pool ended: lifetime"
    finally:
        pool.stop()


HANGER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "pool-leftover-" + "marker"])
time.sleep(600)
"""


def test_sigterm_kills_the_run_in_progress_and_ends_the_pool(pool: PoolProcess, tmp_path: Path) -> None:
    pool.submit("r-hangs", HANGER, tmp_path)
    deadline = time.monotonic() + 60
    while not leftover_processes():
        assert time.monotonic() < deadline, pool.log()
        time.sleep(0.05)
    pool.proc.send_signal(signal.SIGTERM)
    assert pool.proc.wait(timeout=30) == 0
    assert pool.log().splitlines()[-1] == "[harness] pool ended: terminated"
    assert not (pool.pooldir / "done" / "r-hangs").exists()  # never finished: the gateway runs it again
    deadline = time.monotonic() + 5
    while leftover_processes():  # a killed pid namespace's processes are gone within moments
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_oldest_entry_comes_first_and_dotfiles_are_not_entries(tmp_path: Path) -> None:
    assert oldest_entry(tmp_path / "missing") is None
    for i, name in enumerate(["r-b", "r-a", ".r-c.tmp"]):
        (tmp_path / name).write_text("")
        os.utime(tmp_path / name, ns=(i * 10**9, (10 - i) * 10**9))
    assert oldest_entry(tmp_path) == "r-a"
    (tmp_path / "r-a").unlink()
    (tmp_path / "r-b").unlink()
    assert oldest_entry(tmp_path) is None


def test_a_runs_limit_is_the_sum_of_its_phases_limits(tmp_path: Path) -> None:
    spec = {"mode": "leaderboard", "timeouts": {"test": 10, "leaderboard": 20}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_limit_s(tmp_path) == 30 + 60
    spec = {"mode": "test", "lang": "cu", "timeouts": {"test": True}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_limit_s(tmp_path) == 180 + 300 + 60
    (tmp_path / "spec.json").write_text("[")
    assert run_limit_s(tmp_path) == 60


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{", "cannot read"),
        ('{"idle_s": 1, "max_lifetime_s": 1}', "pool_id"),
        ('{"pool_id": "p", "idle_s": 0, "max_lifetime_s": 1}', "positive"),
        ('{"pool_id": "p", "idle_s": 1, "max_lifetime_s": true}', "positive"),
    ],
)
def test_a_bad_pool_json_says_what_is_wrong(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "pool.json").write_text(text)
    with pytest.raises(PoolError, match=error):
        PoolConfig.load(tmp_path)
    (tmp_path / "pool.json").write_text('{"pool_id": "p", "idle_s": 1.5, "max_lifetime_s": 60}')
    assert PoolConfig.load(tmp_path) == PoolConfig("p", 1.5, 60.0)
