"""The requests and runs that several layers share: what a front end asks for (``SubmitRequest``), what
``enqueue`` answers (``Submission``), a worker's hold on a run (``Claim``), a site sweep's outcome
(``Sweep``). A low module: it imports no service, processor or worker, so each of them (and every front
end) can import it without a circle."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.config.sites import LOCAL_SITE_NAME
from gateway.config.tasks import TaskDefinition
from gateway.core.errors import UserError
from gateway.core.modes import Mode
from gateway.service.authority import Caller

if TYPE_CHECKING:
    from gateway.store import Store

EventCallback = Callable[[str, str], Awaitable[None]]  # (run id, message)
# The GPU type of a run on the gateway's own machine (the built-in local site), as runs record it.
LOCAL_GPU_LABEL = "local"
# A sweep leaves a run folder alone while it changed in the last this many seconds (a run submitted by a
# gateway with another database, or without one, is unknown here but may still be running).
DEFAULT_SWEEP_GRACE_S = 24 * 3600.0


@dataclass(frozen=True)
class SubmitRequest:
    code: str
    file_name: str
    user: str
    task: TaskDefinition | None = None  # may be omitted when the leaderboard exists: its task is used
    leaderboard: str | None = None  # defaults to the task's name when a database is configured
    site: str | None = None  # None: routed among the sites offering gpu_type; the local site without one
    gpu_type: str | None = None
    mode: Mode = "leaderboard"
    # the submitter holds an admin's rights, as its front end established (gateway.service.authority): naming
    # a site, a hidden leaderboard, making a leaderboard from a task
    admin: bool = False

    @property
    def caller(self) -> Caller:
        return Caller(self.user, self.admin)

    @property
    def on_this_machine(self) -> bool:
        """Whether it runs on the gateway's own machine (the built-in local site)."""
        return self.site in (None, LOCAL_SITE_NAME) and self.gpu_type in (None, LOCAL_GPU_LABEL)


@dataclass(frozen=True)
class QueuedRun:
    run_id: str
    gpu_type: str
    secret: bool


@dataclass(frozen=True)
class Submission:
    """A stored submission and its queued runs (what ``enqueue`` returns at once)."""

    id: int
    leaderboard: str | None
    runs: list[QueuedRun]
    public_id: str = ""  # what users see and ask for (ids are not guessable from one another)

    @property
    def run_ids(self) -> list[str]:
        return [run.run_id for run in self.runs]

    @property
    def public_run(self) -> QueuedRun:
        return next(run for run in self.runs if not run.secret)


@dataclass
class Claim:
    """A worker's hold on one run while it processes it. ``lost`` (another worker took the run over, or
    this one is stopping) ends processing without touching the job; ``cancel_reason`` cancels the job."""

    worker: str
    lost: bool = False
    cancel_reason: str | None = None


@dataclass(frozen=True)
class Sweep:
    """What a sweep of one site's work folder did."""

    site: str
    removed: list[str] = field(default_factory=list)  # run folders removed: finished or unknown runs
    unfinished: int = 0  # folders kept: their runs are queued or running
    recent: int = 0  # folders kept: changed within the grace period


def require_store(store: Store | None) -> Store:
    """The database, or the UserError every part of the service gives when none is configured."""
    if store is None:
        raise UserError("no database is configured: set GATEWAY_DATABASE_URL (see `gateway dev env`)")
    return store
