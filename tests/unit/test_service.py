"""The service with a scripted backend: what it believes, and what it refuses to believe."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.sites import KeepBundles, SiteConfig
from gateway.core.errors import SubmissionError, UserError
from gateway.core.states import JobState
from gateway.running.backends.base import JobHandle, JobRequest, JobStatus, PartitionLoad
from gateway.running.bundle import BundlePaths
from gateway.service.facade import Gateway, RunReport
from gateway.service.isolation import Verdict
from gateway.service.model import SubmitRequest
from harness.protocol import load_key_hex, sign_result
from tests.unit.fakes import gamma_site, tiny_task

TASK = tiny_task(benchmarks=[{"size": 2}])


async def verified(_site: SiteConfig) -> Verdict:
    """The fake site's isolation counts as verified: the probe itself runs on the dev stack
    (tests/integration/test_isolation.py)."""
    return Verdict(True, "a fake site")


SITE = gamma_site(name="big", gres="gpu:1")
PASSING_KV = {
    "check": "pass",
    "test-count": "1",
    "test.0.spec": "size: 1",
    "test.0.status": "pass",
    "benchmark-count": "1",
    "benchmark.0.spec": "size: 2",
    "benchmark.0.runs": "5",
    "benchmark.0.mean": "2000",
    "benchmark.0.std": "1",
    "benchmark.0.err": "0.5",
    "benchmark.0.best": "1990",
    "benchmark.0.worst": "2010",
}


def payload(run_id: str, kv: dict[str, str] = PASSING_KV) -> dict[str, object]:
    phase = {
        "name": "leaderboard",
        "exit_code": 0,
        "timed_out": False,
        "duration_s": 1.0,
        "kv": kv,
        "stdout_tail": "",
        "stderr_tail": "",
    }
    return {
        "version": 1,
        "run_id": run_id,
        "mode": "leaderboard",
        "system": {"hostname": "n1"},
        "phases": [phase],
        "error": None,
    }


Scenario = Callable[[JobRequest], tuple[JobState, bytes | None]]


class ScriptedBackend:
    name = "scripted"

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.outcomes: dict[str, tuple[JobState, bytes | None]] = {}
        self.cancelled: list[str] = []
        self.lines: list[str] = []  # what the job's output stream shows
        self.removed: list[tuple[str, KeepBundles]] = []  # (run id, what was kept), in order

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]:
        handles = []
        for request in requests:
            job_id = str(100 + len(self.outcomes))
            self.outcomes[job_id] = self.scenario(request)
            handles.append(JobHandle(request.run_id, job_id, BundlePaths.under("/w", request.run_id)))
        return handles

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        return {h.job_id: JobStatus(self.outcomes[h.job_id][0]) for h in handles}

    async def cancel(self, handles: Sequence[JobHandle]) -> None:
        self.cancelled.extend(h.job_id for h in handles)

    def _not_removed(self, handle: JobHandle) -> None:
        # nothing of a run is read from its bundle after the bundle was removed
        assert handle.run_id not in {run_id for run_id, _ in self.removed}, "read after removal"

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        self._not_removed(handle)
        return self.outcomes[handle.job_id][1]

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 65536) -> str:
        self._not_removed(handle)
        return "[harness] output\n"

    async def remove(self, run_ids: Sequence[str], keep: KeepBundles = "none") -> None:
        self.removed.extend((run_id, keep) for run_id in run_ids)

    async def bundles(self) -> dict[str, float]:
        return {}

    async def find(self, requests: Sequence[JobRequest]) -> dict[str, JobHandle]:
        return {}

    async def load(self) -> dict[str, PartitionLoad]:
        return {p.name: PartitionLoad(p.name, True, 0, 0) for p in SITE.partitions}

    async def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        for line in self.lines:
            yield line

    async def close(self) -> None:
        return None


def signed(request: JobRequest, key_hex: str | None = None, **changes: object) -> bytes:
    body = payload(request.run_id) | changes
    return json.dumps(sign_result(body, load_key_hex(key_hex or request.key_hex))).encode()


async def submit(
    scenario: Scenario, tmp_path: Path, code: str = "def custom_kernel(d):\n    return d\n"
) -> RunReport:
    gateway = await gateway_with(ScriptedBackend(scenario), tmp_path)
    try:
        return await gateway.submit(
            SubmitRequest(
                code=code, file_name="k.py", user="u", task=TASK, site="gamma", gpu_type="H100", admin=True
            )
        )
    finally:
        await gateway.close()


async def test_a_verified_result_is_scored(tmp_path: Path) -> None:
    report = await submit(lambda r: (JobState.COMPLETED, signed(r)), tmp_path)
    assert report.passed and report.score == pytest.approx(2e-6)
    assert (report.site, report.partition, report.job_id) == ("gamma", "big", "100")


async def test_a_result_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    report = await submit(lambda r: (JobState.COMPLETED, signed(r, key_hex="ab" * 32)), tmp_path)
    assert not report.passed and report.score is None
    assert "failed authentication" in (report.error or "")


async def test_a_result_of_another_run_is_refused(tmp_path: Path) -> None:
    report = await submit(lambda r: (JobState.COMPLETED, signed(r, run_id="someone-else")), tmp_path)
    assert not report.passed and "belongs to run someone-else" in (report.error or "")


async def test_garbage_or_missing_result(tmp_path: Path) -> None:
    garbage = await submit(lambda r: (JobState.COMPLETED, b"check: pass\n"), tmp_path)
    assert not garbage.passed and "not JSON" in (garbage.error or "")
    missing = await submit(lambda r: (JobState.COMPLETED, None), tmp_path)
    assert not missing.passed and "no result.json" in (missing.error or "")


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (JobState.TIMEOUT, "time limit"),
        (JobState.OUT_OF_MEMORY, "out of memory"),
        (JobState.NODE_FAIL, "node failed"),
        (JobState.PREEMPTED, "preempted"),
    ],
)
async def test_a_job_that_ends_without_result_says_why(tmp_path: Path, state: JobState, words: str) -> None:
    report = await submit(lambda r: (state, None), tmp_path)
    assert report.state is state and not report.passed and words in (report.error or "")


async def test_bad_input_is_refused_before_anything_runs(tmp_path: Path) -> None:
    def never(_r: JobRequest) -> tuple[JobState, bytes | None]:
        raise AssertionError("nothing may be submitted")

    with pytest.raises(SubmissionError, match="empty"):
        await submit(never, tmp_path, code="   \n")
    with pytest.raises(SubmissionError, match="limit"):
        await submit(never, tmp_path, code="x = 1\n" * 100_000)
    gateway = await gateway_with(ScriptedBackend(never), tmp_path)
    with pytest.raises(UserError, match="unknown site 'nowhere'"):
        await gateway.submit(
            SubmitRequest(code="x=1\n", file_name="k.py", user="u", task=TASK, site="nowhere", admin=True)
        )
    with pytest.raises(UserError, match="offers: H100"):
        await gateway.submit(
            SubmitRequest(
                code="x=1\n", file_name="k.py", user="u", task=TASK, site="gamma", gpu_type="B200", admin=True
            )
        )


async def test_a_submitter_that_stops_waiting_cancels_the_job(tmp_path: Path) -> None:
    backend = ScriptedBackend(lambda r: (JobState.RUNNING, None))
    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path)
    gateway = Gateway(
        settings, {"gamma": SITE}, None, backend_factory=lambda _s: backend, verify_isolation=verified
    )
    request = SubmitRequest(code="x = 1\n", file_name="k.py", user="u", task=TASK, site="gamma", admin=True)
    waiting = asyncio.create_task(gateway.submit(request))
    await asyncio.sleep(0.5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert backend.cancelled == ["100"]
    await gateway.close()


async def gateway_with(backend: ScriptedBackend, tmp_path: Path, site: SiteConfig = SITE) -> Gateway:
    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path, templates_dir=REPO_ROOT / "templates")
    return Gateway(
        settings, {site.name: site}, None, backend_factory=lambda _s: backend, verify_isolation=verified
    )


def request_to(site: str = "gamma") -> SubmitRequest:
    return SubmitRequest(
        code="x = 1\n", file_name="k.py", user="u", task=TASK, site=site, gpu_type="H100", admin=True
    )


async def test_the_result_is_pushed_by_the_output_stream_before_slurm_says_done(tmp_path: Path) -> None:
    """Slurm still says RUNNING (the safety net would wait), but the runner's last line is in the output:
    the result is fetched, verified and taken at once."""
    backend = ScriptedBackend(lambda r: (JobState.RUNNING, signed(r)))
    backend.lines = ["[harness] phase test started", "user noise", "[harness] result written"]
    gateway = await gateway_with(backend, tmp_path)
    events: list[str] = []

    async def on_event(_run: str, message: str) -> None:
        events.append(message)

    report = await asyncio.wait_for(gateway.submit(request_to(), on_event), 5)
    await gateway.close()
    assert report.pushed and report.passed and report.state is JobState.COMPLETED
    assert "phase test started" in events and "user noise" not in events  # only the runner's lines
    assert list(report.output) == backend.lines


async def test_a_forged_result_line_does_not_end_the_run(tmp_path: Path) -> None:
    """A submission can print the marker; the unsigned result it points at is ignored and the run ends
    when Slurm says so, with the real (here: missing) result."""
    forged = json.dumps({"payload": payload("x"), "tag": "00"}).encode()
    backend = ScriptedBackend(lambda r: (JobState.COMPLETED, forged))
    backend.lines = ["[harness] result written"]
    gateway = await gateway_with(backend, tmp_path)
    report = await asyncio.wait_for(gateway.submit(request_to()), 5)
    await gateway.close()
    assert not report.pushed and not report.passed
    assert "failed authentication" in (report.error or "")


async def test_a_node_failure_runs_again_under_the_requeue_policy(tmp_path: Path) -> None:
    attempts: list[tuple[int, bool]] = []

    def scenario(request: JobRequest) -> tuple[JobState, bytes | None]:
        attempts.append((request.attempt, request.maybe_submitted))
        return (JobState.NODE_FAIL, None) if request.attempt == 1 else (JobState.COMPLETED, signed(request))

    gateway = await gateway_with(ScriptedBackend(scenario), tmp_path)
    report = await gateway.submit(request_to())
    await gateway.close()
    assert report.passed and report.attempt == 2
    assert attempts == [(1, False), (2, True)]  # the second attempt is looked up before it is submitted
    assert any("starting it again" in e for e in report.events)


async def test_a_timeout_is_the_submissions_fault_and_is_not_run_again(tmp_path: Path) -> None:
    attempts: list[int] = []

    def scenario(request: JobRequest) -> tuple[JobState, bytes | None]:
        attempts.append(request.attempt)
        return JobState.TIMEOUT, None

    gateway = await gateway_with(ScriptedBackend(scenario), tmp_path)
    report = await gateway.submit(request_to())
    await gateway.close()
    assert attempts == [1] and report.state is JobState.TIMEOUT and "time limit" in (report.error or "")


async def test_without_a_site_the_gpu_type_routes_to_the_best_partition(tmp_path: Path) -> None:
    busy = gamma_site(name="h100")
    idle = gamma_site(name="h100").model_copy(update={"name": "delta", "preference": 200})
    loads = {"gamma": PartitionLoad("h100", True, 3, 2), "delta": PartitionLoad("h100", True, 0, 1)}

    class Loaded(ScriptedBackend):
        def __init__(self, site: SiteConfig) -> None:
            super().__init__(lambda r: (JobState.COMPLETED, signed(r)))
            self.site = site

        async def load(self) -> dict[str, PartitionLoad]:
            return {"h100": loads[self.site.name]}

    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path, templates_dir=REPO_ROOT / "templates")
    gateway = Gateway(
        settings, {"gamma": busy, "delta": idle}, None, backend_factory=Loaded, verify_isolation=verified
    )
    choice = await gateway.placement.route(None, "H100", mode="test")
    assert choice.site.name == "delta"  # it can start now; gamma has a queue, whatever the preference
    loads["delta"] = PartitionLoad("h100", False, 0, 0, "drain")
    gateway.router.forget_loads()
    assert (await gateway.placement.route(None, "h100", mode="test")).site.name == "gamma"
    loads["gamma"] = PartitionLoad("h100", False, 0, 0, "down")
    gateway.router.forget_loads()
    with pytest.raises(
        UserError, match=r"gamma/h100: down.*delta/h100: drain|delta/h100: drain.*gamma/h100: down"
    ):
        await gateway.placement.route(None, "H100", mode="test")
    await gateway.close()
