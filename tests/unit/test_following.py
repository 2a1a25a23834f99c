"""Following a run: the waiting message (state, Slurm's reason, expected start) written once per change
and read back, the status line drawn from events with a fixed clock, and `#!POPCORN` directives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from gateway.cli.follow import StatusBoard, live_status, span
from gateway.client.directives import Directives, parse_directives
from gateway.core.errors import UserError
from gateway.core.states import JobState
from gateway.core.waiting import Waiting, parse_waiting, waiting_message, worth_telling
from gateway.running.backends.base import JobHandle, JobRequest, JobStatus
from gateway.running.bundle import BundlePaths
from gateway.running.execution import RunReport, SiteRuntime, execute
from gateway.running.monitor import Monitor
from tests.unit.fakes import gamma_site, tiny_task

START = datetime(2026, 12, 7, 6, 40, tzinfo=UTC)


# -- the waiting message -------------------------------------------------------------------------------


def test_a_waiting_message_reads_back_as_written() -> None:
    message = waiting_message("PENDING", "Resources: waiting for a free GPU", START.timestamp())
    assert message == (
        "PENDING (Resources: waiting for a free GPU); Slurm expects it to start at 2026-12-07 06:40:00 UTC"
    )
    assert parse_waiting(message) == Waiting("PENDING", "Resources: waiting for a free GPU", START)
    assert parse_waiting("RUNNING") == Waiting("RUNNING")
    assert parse_waiting("PENDING (Priority: waiting behind higher-priority jobs)") == Waiting(
        "PENDING", "Priority: waiting behind higher-priority jobs"
    )


@pytest.mark.parametrize(
    "message", ["submitted as job 12", "routed to alpha/h100", "OK", "TEST (3 of 5)", "passed", ""]
)
def test_other_messages_are_not_read_as_waiting(message: str) -> None:
    assert parse_waiting(message) is None


def test_only_a_change_worth_seeing_is_told() -> None:
    told = ("PENDING", "Resources", 1000.0)
    assert worth_telling(None, told)
    assert not worth_telling(told, ("PENDING", "Resources", 1059.0))  # the estimate barely moved
    assert worth_telling(told, ("PENDING", "Resources", 1060.0))
    assert worth_telling(told, ("PENDING", "Resources", None))  # the estimate went away
    assert worth_telling(("PENDING", "Resources", None), told)
    assert worth_telling(told, ("PENDING", "Priority", 1000.0))
    assert worth_telling(told, ("RUNNING", None, None))
    assert not worth_telling(("RUNNING", None, None), ("RUNNING", None, None))


class ScriptedSlurm:
    """A backend whose job goes through scripted statuses, one a monitor round; no output, no result."""

    name = "scripted"

    def __init__(self, statuses: list[JobStatus]) -> None:
        self.statuses = statuses
        self.rounds = 0

    async def submit(self, requests: Sequence[JobRequest]) -> list[JobHandle]:
        return [JobHandle(r.run_id, "41", BundlePaths.under("/w", r.run_id)) for r in requests]

    async def status(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        status = self.statuses[min(self.rounds, len(self.statuses) - 1)]
        self.rounds += 1
        return {h.job_id: status for h in handles}

    async def stream_output(self, handle: JobHandle) -> AsyncGenerator[str, None]:
        await asyncio.sleep(3600)  # a tail that never prints: the monitor ends the job
        yield ""

    async def fetch_result(self, handle: JobHandle) -> bytes | None:
        return None

    async def fetch_output(self, handle: JobHandle, max_bytes: int = 64 * 1024) -> str:
        return ""


async def test_a_pending_job_is_told_once_per_change_of_state_reason_or_estimate() -> None:
    at = START.timestamp()
    pending = JobState.PENDING
    backend = ScriptedSlurm(
        [
            JobStatus(pending, "Priority"),
            JobStatus(pending, "Resources", at),
            JobStatus(pending, "Resources", at + 20),  # moved 20 s: not news
            JobStatus(pending, "Resources", at + 40),
            JobStatus(pending, "Resources", at + 300),  # moved 5 min: news
            JobStatus(JobState.RUNNING),
            JobStatus(JobState.FAILED, "exit code 1:0"),
        ]
    )
    monitor = Monitor(backend, min_interval_s=0.001, max_interval_s=0.002)  # type: ignore[arg-type]
    site = gamma_site()
    job = JobRequest("r1", site, site.partitions[0], tiny_task(), "code", {"run_id": "r1"}, "aa" * 32)
    report = RunReport("r1", "alice", "k.py", site.name, site.partitions[0].name, "H100")
    told: list[str] = []
    persisted: list[str] = []

    async def event(message: str, *, progress: bool = False) -> None:
        told.append(message)

    async def persist(report: RunReport, status: JobStatus | None) -> None:
        persisted.append(report.state.value)

    await asyncio.wait_for(execute(SiteRuntime(backend, monitor), job, report, event, persist), 10)  # type: ignore[arg-type]
    await monitor.close()
    expected = datetime.fromtimestamp(at + 300, UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert told[:5] == [
        "submitted as job 41",
        "PENDING (Priority: waiting behind higher-priority jobs)",
        "PENDING (Resources: waiting for a free GPU); Slurm expects it to start at 2026-12-07 06:40:00 UTC",
        f"PENDING (Resources: waiting for a free GPU); Slurm expects it to start at {expected} UTC",
        "RUNNING",
    ]
    assert persisted == ["PENDING", "PENDING", "RUNNING"]  # submitted, then each new state once
    assert report.state is JobState.FAILED


# -- the status line -----------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_span_reads_like_a_stopwatch() -> None:
    assert [span(s) for s in (-3, 0, 42, 185, 3600, 7625)] == [
        "0s",
        "0s",
        "42s",
        "3m 05s",
        "1h 00m",
        "2h 07m",
    ]


def test_the_status_line_follows_the_events() -> None:
    clock = Clock(START - timedelta(minutes=4))
    board = StatusBoard(clock=clock)
    queued_at = START - timedelta(minutes=5, seconds=30)
    board.add("3f2a9c1e-0000-4000-8000-000000000001", queued_at)
    board.add("77aa0000-0000-4000-8000-000000000002", queued_at, secret=True)
    board.runs["3f2a9c1e-0000-4000-8000-000000000001"].queue_position = 3
    lines = board.render().plain.splitlines()
    assert lines == [
        "3f2a9c1e QUEUED · place 3 in the gateway's queue · 1m 30s since queued",
        "77aa0000 QUEUED (secret rerun) · 1m 30s since queued",
    ]
    run = "3f2a9c1e-0000-4000-8000-000000000001"
    board.apply(run, "state", "routed to alpha/h100 (H100): least loaded")
    board.apply(run, "state", "submitted as job 41")
    assert board.runs[run].state == "PENDING" and board.runs[run].queue_position is None
    message = waiting_message("PENDING", "Resources: waiting for a free GPU", START.timestamp())
    board.apply(run, "state", message, "PENDING")
    assert board.render().plain.splitlines()[0] == (
        "3f2a9c1e PENDING · Resources: waiting for a free GPU · Slurm expects it to start in 4m 00s · "
        "1m 30s since queued"
    )
    clock.now = START + timedelta(seconds=5)
    assert "Slurm starts it soon · 5m 35s since queued" in board.render().plain
    board.apply(run, "state", "RUNNING", "RUNNING")
    assert board.render().plain.splitlines()[0] == "3f2a9c1e RUNNING · 5m 35s since queued"
    board.apply(run, "progress", "OK (1 of 3)", "RUNNING")  # progress never reads as a state
    board.apply(run, "finished", "passed", "COMPLETED")
    assert board.render().plain.splitlines() == ["77aa0000 QUEUED (secret rerun) · 5m 35s since queued"]


def test_a_reason_chosen_by_nobody_in_particular_is_never_markup() -> None:
    board = StatusBoard(clock=Clock(START))
    board.apply("r1", "state", "PENDING ([red]x[/red])", "PENDING")
    assert "[red]x[/red]" in board.render().plain


async def test_off_a_terminal_each_event_is_one_plain_line_and_no_board() -> None:
    console = Console(record=True, force_terminal=False, width=200)
    board = StatusBoard(clock=Clock(START))
    async with live_status(console, board) as show:
        await show("3f2a9c1e-0000", "state", "submitted as job 41", None)
        await show("3f2a9c1e-0000", "state", "RUNNING", "RUNNING")
    assert console.export_text().splitlines() == ["3f2a9c1e submitted as job 41", "3f2a9c1e RUNNING"]
    assert board.runs["3f2a9c1e-0000"].state == "RUNNING"


async def test_on_a_terminal_the_board_is_drawn_under_the_lines() -> None:
    console = Console(record=True, force_terminal=True, width=200, color_system=None)
    board = StatusBoard(clock=Clock(START))
    board.add("3f2a9c1e-0000", START - timedelta(seconds=12))
    async with live_status(console, board) as show:
        await show("3f2a9c1e-0000", "state", "submitted as job 41", None)
    out = console.export_text()
    assert "3f2a9c1e submitted as job 41" in out
    assert "3f2a9c1e PENDING · 12s since queued" in out


async def test_quiet_prints_nothing() -> None:
    console = Console(record=True, force_terminal=True, width=200)
    async with live_status(console, StatusBoard(clock=Clock(START)), quiet=True) as show:
        await show("r1", "state", "RUNNING", "RUNNING")
    assert console.export_text() == ""


# -- #!POPCORN directives ------------------------------------------------------------------------------


def test_directives_at_the_top_set_the_board_and_gpu() -> None:
    code = "#!POPCORN leaderboard vectoradd\n#!POPCORN gpu H100\nimport torch\n"
    assert parse_directives(code) == Directives("vectoradd", "H100")
    cuda = "// a kernel\n//!POPCORN Leaderboard grayscale\n//!POPCORN GPUS A100\n#include <cuda.h>\n"
    assert parse_directives(cuda) == Directives("grayscale", "A100")
    shebang = "#!/usr/bin/env python\n# solution\n#!POPCORN gpu L4\n"
    assert parse_directives(shebang) == Directives(None, "L4")


def test_directives_count_only_in_the_first_comment_block() -> None:
    assert parse_directives("import torch\n#!POPCORN leaderboard late\n") == Directives()
    assert parse_directives("# x\n\n#!POPCORN leaderboard late\n") == Directives()
    assert parse_directives("#!popcorn leaderboard x\n# !POPCORN gpu H100\n") == Directives()
    assert parse_directives("") == Directives()


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("#!POPCORN\n", "without a keyword"),
        ("#!POPCORN leaderboard\n", "names no leaderboard"),
        ("#!POPCORN gpu\n", "names no GPU type"),
        ("#!POPCORN gpus H100 A100\n", "several GPU types"),
        ("#!POPCORN leaderbord x\n", "unknown directive 'leaderbord'"),
        ("#!POPCORN leaderboard a b\n", "several names"),
        ("#!POPCORN gpu H100\n#!POPCORN gpu A100\n", "a second GPU type"),
    ],
)
def test_a_malformed_directive_says_what_to_write(code: str, words: str) -> None:
    with pytest.raises(UserError, match=words) as caught:
        parse_directives("# header\n" + code, "k.py")
    assert str(caught.value).startswith(f"k.py, line {1 + code.count(chr(10))}: ")


def test_a_directive_repeated_with_the_same_value_is_fine() -> None:
    assert parse_directives("#!POPCORN gpu H100\n#!POPCORN gpu H100\n") == Directives(None, "H100")


# -- the remote reads (the wire; the real API answers them in tests/integration/test_following.py) ----


async def test_remote_reads_ask_the_right_paths_and_check_the_answers_shape() -> None:
    import httpx

    from gateway.client.remote import RemoteGateway
    from gateway.core.errors import RemoteError

    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url.raw_path, "ascii"))
        if request.url.path == "/api/leaderboards":
            return httpx.Response(200, json={"not": "a list"})
        if request.url.path.endswith("/ranking") or request.url.path.endswith("/runs"):
            return httpx.Response(200, json=[{"gpu_type": "H100", "entries": []}])
        return httpx.Response(200, json={"submissions": [], "next_before": None})

    async with RemoteGateway("https://gw.example.org", "tok", transport=httpx.MockTransport(handle)) as gw:
        assert await gw.ranking("my board/2", "H100", 5) == [{"gpu_type": "H100", "entries": []}]
        assert await gw.recent_runs("a?b", 3) == [{"gpu_type": "H100", "entries": []}]
        assert await gw.my_submissions(10, "0f" * 16) == {"submissions": [], "next_before": None}
        with pytest.raises(RemoteError, match="something other than a list of objects"):
            await gw.leaderboards()
        with pytest.raises(UserError, match="give the leaderboard's name"):
            await gw.leaderboard(" ")
    assert asked[:3] == [
        "/api/leaderboards/my%20board%2F2/ranking?top=5&gpu=H100",
        "/api/leaderboards/a%3Fb/runs?limit=3",
        f"/api/me/submissions?limit=10&before={'0f' * 16}",
    ]


def test_the_apis_json_renders_in_the_local_tables() -> None:
    from gateway.cli.api_json import submission_row_of, view_of_api
    from gateway.cli.output import print_leaderboard
    from gateway.cli.tables import print_submissions

    board = {"name": "vectoradd", "gpu_types": ["H100"], "ranking_by": "mean", "visibility": "public"}
    entry = {
        "rank": 1,
        "user": "[bold]eve[/bold]",
        "score": 3.99e-5,
        "run_id": "3f2a9c1e-0000-4000-8000-000000000001",
        "file_name": "k.py",
        "site": "alpha",
        "submitted_at": "2026-12-07T06:00:00+00:00",
    }
    failed = {
        "run_id": "77aa0000-0000-4000-8000-000000000002",
        "user": "bob",
        "file_name": "w.py",
        "state": "COMPLETED",
        "passed": False,
        "error": "mismatch",
        "queued_at": "2026-12-07T06:00:00Z",
    }
    console = Console(record=True, width=200, color_system=None)
    print_leaderboard(console, view_of_api(board, [{"gpu_type": "H100", "entries": [entry]}], [failed]))
    item = {
        "submission_id": "ab" * 16,
        "state": "QUEUED",
        "passed": None,
        "public_run_id": "3f2a",
        "mode": "test",
    }
    print_submissions(console, [submission_row_of(item)], "submissions")
    out = console.export_text()
    assert "[bold]eve[/bold]" in out and "39.9" in out and "3f2a9c1e" in out  # names shown as written
    assert "recent failed runs" in out and "mismatch" in out
    assert "ab" * 16 in out and "QUEUED" in out


def test_detach_without_a_gpu_type_says_why_it_cannot_queue(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gateway.cli.main import app

    file = tmp_path / "k.py"
    file.write_text("#!POPCORN leaderboard vectoradd\nx = 1\n")
    done = CliRunner().invoke(app, ["submit", str(file), "--detach"])
    assert done.exit_code == 2
    assert "a run on this machine is never queued" in " ".join(done.output.split())
    both = CliRunner().invoke(app, ["submit", str(file), "--detach", "--json", "--gpu", "H100"])
    assert both.exit_code == 2 and "cannot go with --json" in both.output
    bad = tmp_path / "bad.py"
    bad.write_text("#!POPCORN gpu\n")
    refused = CliRunner().invoke(app, ["submit", str(bad), "--gpu", "H100", "--no-db"])
    assert refused.exit_code == 2 and "bad.py, line 1" in refused.output


def test_flags_win_over_directives(tmp_path: Path) -> None:
    from gateway.cli.main import with_directives

    file = tmp_path / "k.py"
    code = "#!POPCORN leaderboard from-file\n#!POPCORN gpu A100\n"
    out = Console()
    assert with_directives(file, code, None, None, out) == ("from-file", "A100")
    assert with_directives(file, code, "from-flag", None, out) == ("from-flag", "A100")
    assert with_directives(file, code, None, "H100", out) == ("from-file", "H100")
