"""Exceptions of the gateway package.

One root, so callers can catch everything the gateway raises; third-party errors are translated at the
boundary with ``raise ... from exc``::

    GatewayError
    ├── UserError            message may be shown to Discord, API and CLI users as it is
    │   ├── TaskError        a task directory or task.yml is malformed
    │   ├── SubmissionError  a submitted file cannot be run (wrong encoding, too large, ...)
    │   │   └── TooLargeError  it is over the size limit (HTTP 413)
    │   ├── NotFoundError    no leaderboard, run or submission by that name or id
    │   └── RefusedError     the submitter may not submit now (banned, deadline passed, rate limited,
    │                        too many unfinished runs, the site it names drained)
    ├── ConfigError          a site YAML or setting is invalid (names file, line and field)
    ├── CommandError         a command through the runner seam failed (argv, exit code, stdout, stderr)
    ├── TransportError       a connection could not be made or broke (SSH, SFTP, local files)
    ├── BackendError         a backend could not submit, follow or fetch a job
    │   └── ResultError      a job's result is missing, unauthenticated or malformed
    ├── StoreError           the database refused or lost a request
    └── RemoteError          a gateway's HTTP API could not be reached, or failed (the remote CLI)
"""

from __future__ import annotations

from collections.abc import Sequence


class GatewayError(Exception):
    """Root of every error the gateway raises."""


class UserError(GatewayError):
    """An error whose message is safe and useful to show to the user who caused it."""


class TaskError(UserError):
    """A task directory or its task.yml is malformed."""


class SubmissionError(UserError):
    """A submitted file cannot be run as it is."""


class TooLargeError(SubmissionError):
    """A submitted file is over the size limit (HTTP 413)."""


class NotFoundError(UserError):
    """What was asked for (a leaderboard, a run, a submission) does not exist (HTTP 404)."""


class RefusedError(UserError):
    """A request refused by policy; ``reason`` is banned | closed | rate_limited | too_many_unfinished
    (the user's unfinished runs at their cap) | drained (the site it names) | forbidden (an admin's right:
    gateway.service.authority) for API status codes."""

    def __init__(self, message: str, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class ConfigError(GatewayError):
    """A site configuration or setting is invalid."""


class TransportError(GatewayError):
    """A connection to a site could not be made, or broke."""


class BackendError(GatewayError):
    """A backend could not submit, follow or fetch a job."""


class ResultError(BackendError):
    """A job's result is missing, failed authentication, or is malformed."""


class StoreError(GatewayError):
    """The database refused or lost a request."""


class RemoteError(GatewayError):
    """A gateway's HTTP API could not be reached, broke the connection, or failed (5xx); the message
    names its URL."""


def _tail(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


class CommandError(GatewayError):
    """A command run through the runner seam exited non-zero or timed out."""

    def __init__(
        self,
        argv: Sequence[str],
        exit_code: int | None,
        stdout: str,
        stderr: str,
        *,
        timed_out: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out
        what = "timed out" if timed_out else f"exited {exit_code}"
        super().__init__(f"command {self.argv!r} {what}: {_tail(stderr.strip() or stdout.strip())}")
