"""What the API processes cache and must hear about: one NOTIFY channel that names what changed, sent inside
the transaction that changes it (so it is delivered at its commit, and never for a rollback).

Payloads: ``board:<id>`` (that leaderboard's ranking may have changed: a run ranked or unranked),
``boards`` (every board's: a deadline, a deletion, a synced competition, a user's shown name or a merge of
accounts) and ``users`` (a token, a ban or an admin's rights changed: who a token is, and what it may do)."""

from __future__ import annotations

from typing import Any

CHANGES_CHANNEL = "gateway_api_changes"
ALL_BOARDS = "boards"
USERS = "users"


def board_changed(board_id: int) -> str:
    return f"board:{board_id}"


async def notify_change(conn: Any, *what: str) -> None:
    """NOTIFY the API processes that ``what`` changed (at the commit of ``conn``'s transaction, if any)."""
    for change in what:
        await conn.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, change)


def parse_change(payload: str) -> tuple[str, int | None]:
    """A notification's payload read back: ("board", its id), ("boards", None), ("users", None), or
    ("unknown", None) for anything else (a listener should then drop everything)."""
    if payload in (ALL_BOARDS, USERS):
        return payload, None
    kind, _, board_id = payload.partition(":")
    if kind == "board" and board_id.isdigit():
        return kind, int(board_id)
    return "unknown", None
