"""A submission that prints the runner's "result written" line costs the gateway one fetch, however many
times it prints it: later lines are only counted, the count is told once, and the honest result is still
taken (when the job ends)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.sites import KeepBundles
from gateway.core.states import JobState
from gateway.running.backends.base import (
    RESULT_WRITTEN_MARKER,
    JobHandle,
    JobRequest,
    JobStatus,
    PartitionLoad,
)
from gateway.running.bundle import BundlePaths
from gateway.running.results import verified_result as verify
from gateway.service.facade import Gateway, RunReport
from gateway.service.model import SubmitRequest
from harness.protocol import load_key_hex, sign_result
from harness.run_result import RunResult
from tests.unit.fakes import gamma_site, tiny_task
from tests.unit.test_service import verified

FORGED = 10_000
SITE = gamma_site()
KV = {"check": "pass", "test-count": "1", "test.0.spec": "size: 1", "test.0.status": "pass"}


def signed(request: JobRequest) -> bytes:
    phase = {"name": "test", "exit_code": 0, "timed_out": False, "duration_s": 1.0, "kv": KV}
    body = {
        "version": 1,
        "run_id": request.run_id,
        "mode": "test",
        "system": {"hostname": "n1"},
        "phases": [phase | {"stdout_tail": "", "stderr_tail": ""}],
        "error": None,
    }
    return json.dumps(sign_result(body, load_key_hex(request.key_hex))).encode()


class FloodingBackend:
    """A job whose submission prints the marker ``forged`` times before the runner writes result.json
    and prints it once more; Slurm says RUNNING until the whole output has been printed (or for good,
    when ``slurm_ends`` is False: only the pushed result can end the run)."""

    name = "flooding"

    def __init__(self, forged: int, slurm_ends: bool = True) -> None:
        self.forged = forged
        self.slurm_ends = slurm_ends
        self.result: bytes | None = None
        self.written = False  # result.json exists (the runner's last line is printed after this)
        self.fetches: list[bool] = []  # one per fetch_result: whether result.json existed by then

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]:
        self.result = signed(requests[0])
        return [JobHandle(requests[0].run_id, "100", BundlePaths.under("/w", requests[0].run_id))]

    async def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        yield "[harness] phase test started"
        for _ in range(self.forged):
            yield RESULT_WRITTEN_MARKER  # printed by the submission
        self.written = True
        yield RESULT_WRITTEN_MARKER  # the runner's own, after result.json is written

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        state = JobState.COMPLETED if self.written and self.slurm_ends else JobState.RUNNING
        return {h.job_id: JobStatus(state) for h in handles}

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        self.fetches.append(self.written)
        return self.result if self.written else None

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 65536) -> str:
        return ""

    async def cancel(self, handles: Sequence[JobHandle]) -> None:
        return None

    async def remove(self, run_ids: Sequence[str], keep: KeepBundles = "none") -> None:
        return None

    async def bundles(self) -> dict[str, float]:
        return {}

    async def find(self, requests: Sequence[JobRequest]) -> dict[str, JobHandle]:
        return {}

    async def load(self) -> dict[str, PartitionLoad]:
        return {p.name: PartitionLoad(p.name, True, 0, 0) for p in SITE.partitions}

    async def close(self) -> None:
        return None


async def submitted(backend: FloodingBackend, tmp_path: Path) -> tuple[RunReport, list[str]]:
    """A test-mode submission run on ``backend`` (as the operator, on the gamma site): its report and
    the events it told."""
    settings = Settings(sites_dir=tmp_path, local_workdir=tmp_path, templates_dir=REPO_ROOT / "templates")
    gateway = Gateway(
        settings, {SITE.name: SITE}, None, backend_factory=lambda _site: backend, verify_isolation=verified
    )
    events: list[str] = []

    async def on_event(_run: str, message: str) -> None:
        events.append(message)

    request = SubmitRequest(
        code="x = 1\n",
        file_name="k.py",
        user="u",
        task=tiny_task(),
        site=SITE.name,
        gpu_type="H100",
        admin=True,
    )
    try:
        return await asyncio.wait_for(gateway.submit(request, on_event), 30), events
    finally:
        await gateway.close()


async def test_ten_thousand_forged_markers_cost_one_fetch_and_the_honest_result_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    verified_in: list[str] = []

    def verified_result(raw: bytes | None, key_hex: str, run_id: str) -> RunResult:
        verified_in.append(threading.current_thread().name)
        return verify(raw, key_hex, run_id)

    monkeypatch.setattr("gateway.running.execution.verified_result", verified_result)
    backend = FloodingBackend(FORGED)
    with caplog.at_level(logging.WARNING, logger="gateway.running.execution"):
        report, events = await submitted(backend, tmp_path)

    # one fetch for the first marker (nothing written yet), none for the 10,000 after it, and one by the
    # safety net when the job ended: that one brought the honest result
    assert backend.fetches == [False, True]
    assert report.passed and report.state is JobState.COMPLETED and not report.pushed
    assert report.forged_markers == FORGED + 1  # the first was acted on and brought nothing: forged too
    # both verifications ran in a worker thread, never on the event loop
    assert len(verified_in) == 2 and threading.main_thread().name not in verified_in
    # the count is told once: one event, one warning; the flood made no events of its own
    told = [e for e in events if e.startswith("ignored")]
    assert told == [
        f'ignored {FORGED + 1} "result written" line(s) in the job\'s output that came without its result '
        "(printed by the submission?); its result, if any, was read when the job ended"
    ]
    assert events.count("result written") == 1 and len(events) < 20
    counted = [r for r in caplog.records if f"ignored {FORGED + 1}" in r.getMessage()]
    assert len(counted) == 1 and len(caplog.records) == 2  # and one for the fetch that found nothing
    assert len(report.output) > 1  # the output is kept (capped), the marker lines with it


async def test_an_honest_first_marker_is_still_pushed_and_counts_nothing(tmp_path: Path) -> None:
    backend = FloodingBackend(0, slurm_ends=False)  # no forgery: the runner's line is the only one
    report, _ = await submitted(backend, tmp_path)
    assert report.passed and report.pushed and report.forged_markers == 0
    assert backend.fetches == [True]
    assert not any(e.startswith("ignored") for e in report.events)


class ChattyBackend(FloodingBackend):
    """A job whose submission prints ``lines`` progress lines (the harness's prefix) before the runner's
    result: each past the budget must cost nothing but a count."""

    def __init__(self, lines: int) -> None:
        super().__init__(0, slurm_ends=False)
        self.lines = lines

    async def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        for n in range(self.lines):
            yield f"[harness] look at me {n}"
        self.written = True
        yield RESULT_WRITTEN_MARKER


async def test_a_flood_of_progress_lines_makes_a_bounded_number_of_events(tmp_path: Path) -> None:
    from gateway.running.execution import MAX_PROGRESS_EVENTS

    backend = ChattyBackend(FORGED)
    report, events = await submitted(backend, tmp_path)
    assert report.passed and report.pushed  # the honest result still comes at once
    assert report.progress_lines == FORGED + 1  # the runner's own line is a progress line too
    flood = [e for e in events if e.startswith("look at me")]
    assert len(flood) == MAX_PROGRESS_EVENTS and flood[-1] == f"look at me {MAX_PROGRESS_EVENTS - 1}"
    told = [e for e in events if "were not recorded" in e]
    assert told == [
        f"{FORGED + 1 - MAX_PROGRESS_EVENTS} progress line(s) after the first {MAX_PROGRESS_EVENTS} were not "
        f"recorded (the job printed {FORGED + 1})"
    ]
