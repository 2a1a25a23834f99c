"""Following runs in the CLI: a live status line under the event lines, `gateway submit --detach`'s
message, and `gateway runs watch` (local, or over a gateway's HTTP API).

The status line shows, for each run still going: its state, Slurm's pending reason, when Slurm expects it
to start, its place in the gateway's own queue, and the time since it was queued. It is drawn only when
the console is a terminal (rich Live, redrawn a few times a second); elsewhere (a pipe, a log file, a
test) each event is one plain line, as it always was. Everything it shows comes from the run's recorded
events (gateway/core/waiting.py wrote them), so a remote watcher sees exactly what a local one does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from gateway.cli.output import plain
from gateway.core.waiting import parse_waiting

if TYPE_CHECKING:
    from gateway.client.remote import RemoteGateway
    from gateway.service.facade import Gateway, RunRecord
    from gateway.service.model import Submission

Clock = Callable[[], datetime]
QUEUE_POLL_S = 3.0  # how often a queued run's place in line is asked for (one small query)
TERMINAL_WORDS = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")


def utc_now() -> datetime:
    return datetime.now(UTC)


def span(seconds: float) -> str:
    """A running time as a status line says it: 42s, 3m 05s, 2h 07m."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


@dataclass
class RunStatus:
    """What the status line knows of one run, from its events."""

    run_id: str
    since: datetime  # when it was queued (or, without a record, when following began)
    state: str = "QUEUED"
    secret: bool = False
    reason: str | None = None
    start_at: datetime | None = None
    queue_position: int | None = None
    finished: bool = False

    def apply(self, kind: str, message: str, state: str | None = None) -> None:
        """Take in one event (``state``: the state it was recorded with, when known)."""
        if kind == "finished":
            self.finished = True
        waiting = parse_waiting(message) if kind == "state" else None
        if waiting is not None:
            self.state, self.reason, self.start_at = waiting.state, waiting.reason, waiting.start_at
        elif kind == "state" and message.startswith("submitted as job"):
            self.state = "PENDING"  # recorded just before the run's state moves on from QUEUED
        elif state:
            self.state = state
        if self.state != "QUEUED":
            self.queue_position = None
        if self.state != "PENDING":
            self.reason = self.start_at = None

    def line(self, now: datetime) -> Text:
        """The run's status line at ``now``."""
        text = Text.assemble((self.run_id[:8], "dim"), " ", (self.state, "bold"))
        if self.secret:
            text.append(" (secret rerun)", "dim")
        parts: list[Text] = []
        if self.state == "QUEUED" and self.queue_position is not None:
            parts.append(Text(f"place {self.queue_position} in the gateway's queue"))
        if self.reason:
            parts.append(plain(self.reason))
        if self.start_at is not None:
            ahead = (self.start_at - now).total_seconds()
            parts.append(
                Text(f"Slurm expects it to start in {span(ahead)}" if ahead >= 1 else "Slurm starts it soon")
            )
        parts.append(Text(f"{span((now - self.since).total_seconds())} since queued", "dim"))
        for part in parts:
            text.append(" · ", "dim")
            text.append_text(part)
        return text


@dataclass
class StatusBoard:
    """The status lines of the runs followed (finished ones drop out)."""

    runs: dict[str, RunStatus] = field(default_factory=dict)
    clock: Clock = utc_now

    def add(self, run_id: str, since: datetime, state: str = "QUEUED", *, secret: bool = False) -> None:
        self.runs.setdefault(run_id, RunStatus(run_id, since, state, secret))

    def apply(self, run_id: str, kind: str, message: str, state: str | None = None) -> None:
        status = self.runs.get(run_id)
        if status is None:
            status = self.runs[run_id] = RunStatus(run_id, self.clock())
        status.apply(kind, message, state)

    def queued(self) -> list[str]:
        return [s.run_id for s in self.runs.values() if not s.finished and s.state == "QUEUED"]

    def render(self) -> Text:
        now = self.clock()
        return Text("\n").join(s.line(now) for s in self.runs.values() if not s.finished)

    def __rich__(self) -> Text:
        return self.render()


Show = Callable[[str, str, str, str | None], Awaitable[None]]  # run id, kind, message, state


@contextlib.asynccontextmanager
async def live_status(console: Console, board: StatusBoard, *, quiet: bool = False) -> AsyncIterator[Show]:
    """A function that prints an event's line and updates the board; on a terminal the board is drawn
    live under the lines until the block ends. ``quiet``: no lines and no board (--json)."""

    async def show(run_id: str, kind: str, message: str, state: str | None = None) -> None:
        board.apply(run_id, kind, message, state)
        if not quiet:
            line = Text.assemble((run_id[:8], "dim"), " ", plain(message))
            console.print(line, highlight=False)

    if quiet or not console.is_terminal:
        yield show
        return
    from rich.live import Live

    with Live(board, console=console, refresh_per_second=4, transient=True):
        yield show


async def poll_queue(board: StatusBoard, position: Callable[[str], Awaitable[int | None]]) -> None:
    """Keep the place in line of the board's queued runs fresh (until cancelled)."""
    while True:
        for run_id in board.queued():
            with contextlib.suppress(Exception):  # advisory: a failed look leaves the last place shown
                board.runs[run_id].queue_position = await position(run_id)
        await asyncio.sleep(QUEUE_POLL_S)


@contextlib.asynccontextmanager
async def polling(
    board: StatusBoard, position: Callable[[str], Awaitable[int | None]]
) -> AsyncIterator[None]:
    task = asyncio.create_task(poll_queue(board, position))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- --detach ------------------------------------------------------------------------------------------


def print_detached(console: Console, submission: Submission) -> None:
    """What `gateway submit --detach` says: the ids, who runs it, and how to follow it."""
    public = submission.public_run.run_id
    console.print(
        Text.assemble(
            ("submission ", "dim"),
            submission.public_id,
            (" queued", "dim"),
            *((" on leaderboard ", "dim"), plain(submission.leaderboard)) if submission.leaderboard else (),
        ),
        highlight=False,
    )
    for run in submission.runs:
        kind = "secret rerun" if run.secret else "run"
        console.print(Text.assemble((f"{kind} ", "dim"), run.run_id, (f" ({run.gpu_type})", "dim")))
    console.print(
        Text.assemble(
            "a `gateway worker` connected to this database runs it; if none is running, nothing runs it "
            "until one starts (`gateway worker`)"
        ),
        highlight=False,
        soft_wrap=True,
    )
    console.print(Text.assemble("follow it: ", (f"gateway runs watch {public}", "bold")), highlight=False)


def print_detached_remote(console: Console, base: str, submitted: dict[str, Any]) -> None:
    """What `gateway submit --remote URL --detach` says."""
    public = str(submitted.get("public_run_id", ""))
    place = submitted.get("queue_position")
    console.print(
        Text.assemble(
            ("submission ", "dim"),
            str(submitted.get("submission_id", "")),
            (" queued at ", "dim"),
            base,
            (" on leaderboard ", "dim"),
            plain(submitted.get("leaderboard")),
            (f"; place {place} in line" if isinstance(place, int) else "", "dim"),
        ),
        highlight=False,
    )
    for run in submitted.get("runs") or []:
        if isinstance(run, dict):
            kind = "secret rerun" if run.get("secret") else "run"
            console.print(
                Text.assemble(
                    (f"{kind} ", "dim"), str(run.get("run_id")), (f" ({run.get('gpu_type')})", "dim")
                )
            )
    console.print(
        Text.assemble("follow it: ", (f"gateway runs watch {public} --remote {base}", "bold")),
        highlight=False,
    )


# -- watching ------------------------------------------------------------------------------------------


def board_of(runs: Iterable[RunRecord], clock: Clock = utc_now) -> StatusBoard:
    board = StatusBoard(clock=clock)
    for run in runs:
        board.add(run.run_id, run.queued_at, run.state, secret=run.secret)
    return board


async def watch_local(gateway: Gateway, run_id: str, console: Console) -> bool:
    """Follow a run's submission (the run given, and its secret rerun) to its end in the database,
    with the live status line; print the result table as `gateway submit` does. True when it passed."""
    from gateway.cli.output import print_report
    from gateway.service.facade import OPERATOR
    from gateway.service.runview import run_view

    record = await gateway.run(run_id, caller=OPERATOR)
    runs = await gateway.submission_runs(record.submission_id, caller=OPERATOR)
    board = board_of(runs)
    async with live_status(console, board) as show, polling(board, gateway.queue_position):
        async for event in gateway.follow([r.run_id for r in runs]):
            await show(event.run_id, event.kind, event.message, event.state)
    runs = await gateway.submission_runs(record.submission_id, caller=OPERATOR)
    secret = {r.gpu_type: r for r in runs if r.secret}
    passed = True
    for run in runs:
        if run.secret:
            continue
        rerun = secret.get(run.gpu_type)
        view = replace(run_view(run), secret_passed=None if rerun is None else rerun.passed is True)
        print_report(console, view)
        passed = passed and view.passed is True and view.secret_passed is not False
    return passed


async def follow_remote(
    gateway: RemoteGateway, submission: dict[str, Any], console: Console, *, quiet: bool = False
) -> dict[str, Any]:
    """Follow a submission over the API with the live status line (``quiet``: neither lines nor the
    board); the finished submission (the API's SubmissionOut)."""
    submission_id = str(submission.get("submission_id"))
    board = StatusBoard()
    for run in submission.get("runs") or []:
        if isinstance(run, dict) and isinstance(run.get("run_id"), str):
            board.add(run["run_id"], _moment(run.get("queued_at")), str(run.get("state") or "QUEUED"))
            board.runs[run["run_id"]].secret = run.get("secret") is True

    async def position(run_id: str) -> int | None:
        place = (await gateway.run(run_id)).get("queue_position")
        return place if isinstance(place, int) else None

    async with live_status(console, board, quiet=quiet) as show, polling(board, position):
        async for event in gateway.follow(submission_id):
            await show(event.run_id, event.kind, event.message, event.state or None)
    return await gateway.submission(submission_id)


def _moment(value: object) -> datetime:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc_now()
