"""Leaderboards written as a competition sync plans them: every board of one sync in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.store.base import StoreBase, retried
from gateway.store.boards import account_id
from gateway.store.changes import ALL_BOARDS, notify_change


@dataclass(frozen=True)
class BoardWrite:
    """A leaderboard's fields as a sync sets them; ``secret_seed`` is used only when it is created."""

    name: str
    description: str
    task: dict[str, Any]
    ranking_by: str
    gpu_types: tuple[str, ...]
    deadline: datetime | None
    secret_seed: int


class CompetitionSyncStore(StoreBase):
    @retried
    async def write_boards(self, boards: Sequence[BoardWrite], creator: str | None = None) -> None:
        """Create each board, or set the fields of the one of that name (its visibility, limits, seed,
        creator, submissions and runs stay), its GPU types becoming exactly those given. All or none."""
        if not boards:
            return
        async with self._conn() as conn, conn.transaction():
            creator_id = await account_id(conn, creator) if creator is not None else None
            for board in boards:
                board_id = await conn.fetchval(
                    "INSERT INTO leaderboards (name, description, task, ranking_by, secret_seed, deadline, "
                    "creator_id) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET "
                    "description = EXCLUDED.description, task = EXCLUDED.task, "
                    "ranking_by = EXCLUDED.ranking_by, deadline = EXCLUDED.deadline RETURNING id",
                    board.name,
                    board.description,
                    board.task,
                    board.ranking_by,
                    board.secret_seed,
                    board.deadline,
                    creator_id,
                )
                gpu_types = sorted(set(board.gpu_types))
                await conn.execute(
                    "DELETE FROM leaderboard_gpus WHERE leaderboard_id = $1 AND gpu_type <> ALL($2::text[])",
                    board_id,
                    gpu_types,
                )
                await conn.executemany(
                    "INSERT INTO leaderboard_gpus (leaderboard_id, gpu_type) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING",
                    [(board_id, gpu) for gpu in gpu_types],
                )
            await notify_change(conn, ALL_BOARDS)  # ranking_by, GPU types or deadline may have changed
