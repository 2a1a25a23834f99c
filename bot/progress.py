"""A submission's runs as the bot shows them, built from the service's run events (pure state: no
Discord, no database)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from gateway.service.facade import RunEvent, Standing, Submission
from gateway.service.runview import RunView

PROGRESS_LINES = 6


@dataclass
class RunProgress:
    run_id: str
    gpu_type: str
    secret: bool
    state: str = "QUEUED"
    detail: str = "queued"
    where: str | None = None  # site/partition once routed (from the routing event's data)
    routed: bool = False
    finished: bool = False
    progress: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=PROGRESS_LINES))
    view: RunView | None = None  # the recorded run as shown, read once it finished

    @property
    def passed(self) -> bool:
        return self.view is not None and bool(self.view.passed)

    @property
    def error(self) -> str | None:
        return self.view.error if self.view is not None else None

    def apply(self, event: RunEvent) -> None:
        self.state = event.state
        if event.kind == "progress":
            self.progress.append(event.message)
            return
        if event.kind == "finished":
            self.finished = True
        elif event.data is not None and "site" in event.data:  # routed, or taken over by another worker
            partition = event.data.get("partition")
            self.routed = True
            self.where = f"{event.data['site']}/{partition}" if partition else str(event.data["site"])
        self.detail = event.message


@dataclass
class SubmissionStatus:
    submission_id: int
    user: str
    file_name: str
    leaderboard: str | None
    mode: str
    runs: dict[str, RunProgress]
    queue_position: int | None = None
    standing: Standing | None = None

    @classmethod
    def of(cls, submission: Submission, user: str, file_name: str, mode: str) -> SubmissionStatus:
        return cls(
            submission.id,
            user,
            file_name,
            submission.leaderboard,
            mode,
            {r.run_id: RunProgress(r.run_id, r.gpu_type, r.secret) for r in submission.runs},
        )

    @property
    def public(self) -> RunProgress:
        return next(run for run in self.runs.values() if not run.secret)

    @property
    def secret(self) -> RunProgress | None:
        return next((run for run in self.runs.values() if run.secret), None)

    @property
    def done(self) -> bool:
        return all(run.finished for run in self.runs.values())

    @property
    def waiting_in_line(self) -> bool:
        public = self.public
        return public.state == "QUEUED" and not public.routed and not public.finished

    def apply(self, event: RunEvent) -> None:
        run = self.runs.get(event.run_id)
        if run is not None:
            run.apply(event)
