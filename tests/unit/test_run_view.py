"""One run as shown (gateway/service/runview.py): times in seconds, a secret rerun without its result, the
route as data; the API, the CLI and the bot render it."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from gateway.cli.tables import print_run
from gateway.core.states import JobState
from gateway.http.api.schemas import run_out
from gateway.running.execution import RunReport
from gateway.service.facade import RunRecord
from gateway.service.runview import HIDDEN_ERROR, Route, run_view, view_of_report
from harness.phase_result import PhaseResult
from harness.protocol import RESULT_VERSION, parse_kv
from harness.run_result import RunResult

RUN = "44444444-0000-0000-0000-000000000000"
NOW = datetime(2026, 12, 7, tzinfo=UTC)
TESTS = "test-count: 1\ntest.0.spec: size: 8\ntest.0.status: pass\ncheck: pass\n"
KV = """benchmark-count: 2
benchmark.0.spec: size: 1024
benchmark.0.runs: 10
benchmark.0.mean: 1500
benchmark.0.std: 20
benchmark.0.err: 5
benchmark.0.best: 1400
benchmark.0.worst: 1700
benchmark.1.spec: size: 2048
benchmark.1.status: fail
benchmark.1.error: too slow
check: pass
"""


def result() -> RunResult:
    tests = PhaseResult("test", 0, False, 1.0, parse_kv(TESTS))
    phase = PhaseResult("leaderboard", 0, False, 1.0, parse_kv(KV))
    return RunResult(RESULT_VERSION, RUN, "leaderboard", {"hostname": "node1", "gpu": "H100"}, [tests, phase])


def record(*, secret: bool = False, routed: bool = True, **changes: Any) -> RunRecord:
    run = RunRecord(
        RUN, 7, "alice", "k.py", "vectoradd", "leaderboard", secret, "H100",
        "alpha" if routed else None, "h100" if routed else None, "12", 1, "COMPLETED", True, 1.5e-6,
        "a wrong answer on hidden input" if secret else None, result().to_payload(), NOW, NOW, NOW, "w", 1,
        not secret, backend="slurm" if routed else None, route_reason="the only site" if routed else None,
        account="discord:1", public_id="pub",
    )  # fmt: skip
    return replace(run, **changes)


def test_timings_are_seconds_and_a_failed_benchmark_has_none() -> None:
    view = run_view(record())
    timed, failed = view.benchmarks
    assert (timed.mean_s, timed.best_s, timed.worst_s, timed.std_s) == pytest.approx(
        (1.5e-6, 1.4e-6, 1.7e-6, 2e-8)
    )
    assert timed.runs == 10
    assert failed.mean_s is None and failed.best_s is None and failed.error == "too slow"
    assert [t.spec for t in view.tests] == ["size: 8"] and view.score == 1.5e-6 and view.has_result
    report = RunReport(RUN, "bob", "k.py", "alpha", "h100", "H100", state=JobState.COMPLETED, result=result())
    live = view_of_report(report)
    assert live.benchmarks == view.benchmarks and live.state == "COMPLETED" and live.system["gpu"] == "H100"


def test_the_route_is_data() -> None:
    assert run_view(record()).route == Route("alpha", "h100", "slurm", "the only site")
    assert run_view(record(routed=False)).route is None
    assert run_view(record()).site == "alpha" and run_view(record(routed=False)).site is None


def test_a_secret_rerun_shows_only_its_verdict_unless_the_operator_asks() -> None:
    hidden = run_view(record(secret=True))
    assert hidden.redacted and hidden.score is None and not hidden.has_result
    assert hidden.tests == () and hidden.benchmarks == () and hidden.system == {} and hidden.ncu is None
    # the verdict only: an error's text may quote the hidden inputs, so every front end gets HIDDEN_ERROR
    assert hidden.passed is True and hidden.error == HIDDEN_ERROR
    out = json.loads(run_out(record(secret=True)).model_dump_json())
    assert out["score"] is None and out["benchmarks"] == [] and out["system"] == {}
    assert out["error"] == HIDDEN_ERROR
    whole = run_view(record(secret=True), reveal_secret=True)  # `gateway runs show`, the operator's own CLI
    assert not whole.redacted and whole.score == 1.5e-6 and len(whole.benchmarks) == 2


def test_the_api_and_the_cli_show_the_same_view() -> None:
    out = json.loads(run_out(record()).model_dump_json())
    assert out["benchmarks"][0]["mean_s"] == pytest.approx(1.5e-6) and out["benchmarks"][1]["runs"] == 0
    assert (out["site"], out["partition"], out["backend"]) == ("alpha", "h100", "slurm")
    text = io.StringIO()
    print_run(Console(file=text, width=200, color_system=None), run_view(record()), None)
    shown = text.getvalue()
    assert "alpha/h100" in shown and "the only site" in shown and "1.500 µs" in shown
