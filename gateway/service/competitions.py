"""How a competition ends, and what competitors do with their own submissions (docs/competitions.md).

- The ranking freezes at a board's deadline: submissions are refused from then on
  (gateway/store/submissions.py), and a run whose result is recorded at or after it still finishes (its
  owner sees its result) but never ranks (gateway/store/queue.py). So the ranking after the deadline is
  the ranking at it, ``final``; queueing many runs just before the deadline changes nothing that has not
  finished by then.
- ``export``: a board's ranking as rows, written as CSV or JSON (the rows `leaderboard show` prints).
- ``code``: a submission's code, to its owner and admins at any time; once its board's deadline has passed
  and the board reveals code (``reveal_code``, set by admins), to everyone who may see the board, for the
  submissions that rank.
- ``delete``: a submission leaves the ranking and every list (softly: kept for the audit trail, with who
  deleted it and when); its queued runs are cancelled, its running ones' workers cancel them. Its owner
  may delete it until the board's deadline (after it the final ranking stays as it is); admins at any time.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.core.errors import NotFoundError, RefusedError
from gateway.core.validation import public_submission_key, shown
from gateway.service.authority import FORBIDDEN, Caller, require_admin
from gateway.service.boards import Boards
from gateway.service.model import require_store
from gateway.store import DeletedSubmission, LeaderboardRecord, RankedEntry, Store, SubmissionCode

EXPORT_LIMIT = 1_000_000  # every ranked user: an export is the whole ranking, not its top
EXPORT_COLUMNS = (
    "leaderboard",
    "gpu_type",
    "rank",
    "user",
    "score",
    "submission_id",
    "file_name",
    "site",
    "submitted_at",
    "finished_at",
    "run_id",
)
ExportValue = str | int | float | None


def is_final(deadline: datetime | None, now: datetime | None = None) -> bool:
    """Whether a board's deadline has passed: its ranking no longer changes."""
    return deadline is not None and deadline <= (now or datetime.now(UTC))


def export_file_name(board: str, fmt: str) -> str:
    """Where an export of a board is written: its name made safe as a file name (names may hold quotes,
    slashes, any script), then -ranking.csv or .json."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in board)[:80]
    return f"{safe.lstrip('.') or 'board'}-ranking.{fmt}"


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def export_row(board: LeaderboardRecord, entry: RankedEntry) -> dict[str, ExportValue]:
    """One ranked entry as an export row (times in UTC, ISO 8601)."""
    return {
        "leaderboard": board.name,
        "gpu_type": entry.gpu_type,
        "rank": entry.rank,
        "user": entry.user_name,
        "score": entry.score,
        "submission_id": entry.submission_id,
        "file_name": entry.file_name,
        "site": entry.site,
        "submitted_at": _time(entry.submitted_at),
        "finished_at": _time(entry.finished_at),
        "run_id": entry.run_id,
    }


@dataclass(frozen=True)
class RankingExport:
    """A board's ranking (every GPU type, or one), best first within each GPU type."""

    leaderboard: str
    ranking_by: str
    deadline: datetime | None
    final: bool  # past its deadline: this is the final ranking
    rows: list[dict[str, ExportValue]]

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            # a cell a spreadsheet would run as a formula (user and file names are the users') is quoted
            writer.writerow({k: _inert(v) for k, v in row.items()})
        return out.getvalue()

    def json(self) -> str:
        document = {
            "leaderboard": self.leaderboard,
            "ranking_by": self.ranking_by,
            "deadline": _time(self.deadline),
            "final": self.final,
            "entries": self.rows,
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def deleted_text(done: DeletedSubmission) -> str:
    """What deleting a submission did, in a line (every front end says it so)."""
    parts = [f"submission {done.public_id} deleted"]
    if done.unranked:
        parts.append("it left the ranking")
    if done.cancelled:
        parts.append(f"{done.cancelled} queued run(s) cancelled")
    if done.cancel_requested:
        parts.append(f"{done.cancel_requested} running run(s) are being cancelled by their workers")
    return "; ".join(parts)


def _inert(value: ExportValue) -> ExportValue:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class Competitions:
    def __init__(self, store: Store | None, boards: Boards) -> None:
        self.store = store
        self.boards = boards

    async def export(self, name: str, gpu: str | None = None, *, caller: Caller) -> RankingExport:
        """A board's whole ranking (or one GPU type's), to anyone who may see the board."""
        board = await self.boards.get_leaderboard(name, caller=caller)
        ranking = await self.boards.rankings(board, gpu, EXPORT_LIMIT)
        rows = [export_row(board, entry) for entries in ranking.values() for entry in entries]
        return RankingExport(board.name, board.ranking_by, board.deadline, is_final(board.deadline), rows)

    async def set_reveal_code(self, name: str, reveal: bool, *, caller: Caller) -> LeaderboardRecord:
        """Reveal a board's ranked submissions' code to everyone who may see it once its deadline has
        passed (or stop revealing it)."""
        require_admin(caller, "revealing a leaderboard's code is for the gateway's admins")
        board = await self.boards.get_leaderboard(name, caller=caller)
        await require_store(self.store).set_reveal_code(board.name, reveal)
        return await self.boards.get_leaderboard(board.name, caller=caller)

    async def _find(self, submission: str, caller: Caller) -> SubmissionCode:
        """A submission by its public id; a deleted one, or a hidden board's, is 'not found' to all but
        admins."""
        missing = NotFoundError(f"no submission {shown(submission)}")
        key = public_submission_key(submission, False)
        found = None if key is None else await require_store(self.store).submission_code(str(key))
        if found is None or (not caller.admin and (found.hidden or found.deleted_at is not None)):
            raise missing
        return found

    async def code(self, submission: str, *, caller: Caller) -> SubmissionCode:
        """A submission's code: its owner's and admins'; everyone's who may see its board once the board's
        deadline has passed, if the board reveals code and the submission ranks."""
        found = await self._find(submission, caller)
        if caller.may_act_for(found.account):
            return found
        if found.closed and found.reveal_code and found.ranked:
            return found
        why = (
            "its leaderboard does not reveal code"
            if not found.reveal_code
            else "it did not rank"
            if found.closed
            else "its leaderboard reveals ranked code only after its deadline"
        )
        raise RefusedError(f"submission {found.public_id} is not yours to read: {why}", FORBIDDEN)

    async def delete(self, submission: str, *, caller: Caller) -> DeletedSubmission:
        """Delete one's own submission before its board's deadline (admins: any, at any time)."""
        found = await self._find(submission, caller)
        if not caller.may_act_for(found.account):
            raise RefusedError("you can delete only your own submissions", FORBIDDEN)
        if found.closed and not caller.admin:
            raise RefusedError(
                f"leaderboard {found.leaderboard} has passed its deadline: its final ranking stays as it "
                "is, so its submissions can no longer be deleted; ask the organisers if one must go",
                FORBIDDEN,
            )
        deleted = await require_store(self.store).delete_submission(found.public_id, caller.account)
        if deleted is None:  # deleted meanwhile
            raise NotFoundError(f"no submission {shown(submission)}")
        return deleted
