"""What one API process keeps in memory between requests: rankings (a board's ranking is read thousands of
times for each change) and who a token is. Both are dropped by PostgreSQL NOTIFY (gateway/store/changes.py,
heard over the event hub's one LISTEN connection), sent in the transaction that changes what they hold; and
both are dropped whole, and unused, while that connection is down (a notification may have been missed).

A ranking answer is kept per (board name, GPU type or all, top N, whether the caller sees hidden boards):
the board's visibility is part of the answer, so an anonymous caller's key never holds a hidden board's
ranking (that read is 'not found' and is not kept). A read that began before a change and ends after it is
not kept: each drop advances a generation, and an answer is put only under the generation it was read in.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from gateway.config.settings import Settings
from gateway.http.api.schemas import RankingOut, ranked_out
from gateway.service.facade import Caller, Gateway, LeaderboardRecord, RankedEntry, UserRecord, parse_change

log = logging.getLogger(__name__)
RankingKey = tuple[str, str | None, int, bool]  # board name as asked, GPU type (None: each), top, admin
_RANKINGS_JSON = TypeAdapter(list[RankingOut])


@dataclass
class RankingAnswer:
    """A board's ranking as read once: the records (for the web page) and its JSON with an ETag (for the
    API), rendered on first use."""

    board: LeaderboardRecord
    rankings: dict[str, list[RankedEntry]]  # GPU type -> entries, best first
    _body: bytes | None = field(default=None, repr=False)
    _etag: str = ""

    def body(self) -> bytes:
        if self._body is None:
            out = [
                RankingOut(
                    leaderboard=self.board.name,
                    gpu_type=gpu_type,
                    ranking_by=self.board.ranking_by,
                    entries=[ranked_out(entry) for entry in entries],
                )
                for gpu_type, entries in self.rankings.items()
            ]
            self._body = _RANKINGS_JSON.dump_json(out)
            self._etag = '"' + hashlib.sha256(self._body).hexdigest()[:32] + '"'
        return self._body

    def etag(self) -> str:
        self.body()
        return self._etag


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weakly compared, as RFC 9110 says for GET)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


class RankingCache:
    """Ranking answers of this process, newest use last, at most ``max_entries``."""

    def __init__(self, enabled: bool, max_entries: int = 4096) -> None:
        self.enabled = enabled
        self.max_entries = max_entries
        self.listening = False  # set by the event hub while its LISTEN connection is up
        self.generation = 0
        self._answers: OrderedDict[RankingKey, RankingAnswer] = OrderedDict()
        self._board_keys: dict[int, set[RankingKey]] = {}

    def get(self, key: RankingKey) -> RankingAnswer | None:
        if not (self.enabled and self.listening):
            return None
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: RankingKey, answer: RankingAnswer, generation: int) -> None:
        """Keep ``answer``, read under ``generation`` (what ``generation`` was before the read), unless
        something changed since."""
        if not (self.enabled and self.listening) or generation != self.generation:
            return
        self._answers[key] = answer
        self._answers.move_to_end(key)
        self._board_keys.setdefault(answer.board.id, set()).add(key)
        while len(self._answers) > self.max_entries:
            old_key, old = self._answers.popitem(last=False)
            self._forget_key(old.board.id, old_key)

    def _forget_key(self, board_id: int, key: RankingKey) -> None:
        keys = self._board_keys.get(board_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._board_keys[board_id]

    def drop_board(self, board_id: int) -> None:
        self.generation += 1
        for key in self._board_keys.pop(board_id, set()):
            self._answers.pop(key, None)

    def drop_all(self) -> None:
        self.generation += 1
        self._answers.clear()
        self._board_keys.clear()


class CallerCache:
    """Who each API token is (by the token's SHA-256), for ``ttl_s`` at most; 0 keeps none."""

    MAX_TOKENS = 50_000

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.listening = False
        self.generation = 0
        self._users: dict[bytes, tuple[UserRecord, float]] = {}

    def get(self, token: str) -> UserRecord | None:
        if not (self.ttl_s > 0 and self.listening):
            return None
        found = self._users.get(_digest(token))
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, token: str, user: UserRecord, generation: int) -> None:
        if not (self.ttl_s > 0 and self.listening) or generation != self.generation:
            return
        if len(self._users) >= self.MAX_TOKENS:
            now = time.monotonic()
            self._users = {k: v for k, v in self._users.items() if v[1] >= now}
            if len(self._users) >= self.MAX_TOKENS:
                self._users.clear()
        self._users[_digest(token)] = (user, time.monotonic() + self.ttl_s)

    def drop_all(self) -> None:
        self.generation += 1
        self._users.clear()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class BoardCache:
    """Leaderboards by name as submissions name them (what a submission is queued against: its task, GPU
    types, visibility), at most ``max_entries``; what may change under a submission (deadline, caps, limits)
    its transaction reads anyway."""

    def __init__(self, enabled: bool, max_entries: int = 1024) -> None:
        self.enabled = enabled
        self.max_entries = max_entries
        self.listening = False
        self.generation = 0
        self._boards: dict[str, LeaderboardRecord] = {}

    def get(self, name: str) -> LeaderboardRecord | None:
        return self._boards.get(name) if self.enabled and self.listening else None

    def put(self, name: str, board: LeaderboardRecord, generation: int) -> None:
        if not (self.enabled and self.listening) or generation != self.generation:
            return
        if len(self._boards) >= self.max_entries:
            self._boards.clear()
        self._boards[name] = board

    def drop_all(self) -> None:
        self.generation += 1
        self._boards.clear()


class ApiCaches:
    """The process's caches, told by the event hub what changed and whether it is listening."""

    def __init__(self, rankings: RankingCache, callers: CallerCache, boards: BoardCache) -> None:
        self.rankings = rankings
        self.callers = callers
        self.boards = boards

    @classmethod
    def of(cls, settings: Settings) -> ApiCaches:
        return cls(
            RankingCache(settings.api_ranking_cache),
            CallerCache(settings.api_token_cache_s),
            BoardCache(settings.api_ranking_cache),
        )

    def listening(self, up: bool) -> None:
        """The LISTEN connection came up (or went down): drop everything, which may have missed a change."""
        self.rankings.listening = self.callers.listening = self.boards.listening = up
        self.drop_all()

    def drop_all(self) -> None:
        self.rankings.drop_all()
        self.callers.drop_all()
        self.boards.drop_all()

    def changed(self, what: str) -> None:
        """A CHANGES_CHANNEL notification's payload."""
        kind, board_id = parse_change(what)
        if kind == "users":
            self.callers.drop_all()
        elif kind == "boards":
            self.rankings.drop_all()
            self.boards.drop_all()
        elif kind == "board" and board_id is not None:
            self.rankings.drop_board(board_id)
        else:
            log.warning("API caches: unknown change %r: dropping everything", what[:200])
            self.drop_all()


async def read_ranking(
    gateway: Gateway, cache: RankingCache, name: str, gpu: str | None, top: int, caller: Caller
) -> RankingAnswer:
    """A board's ranking (one GPU type, or each) as ``caller`` may see it: from the cache, else read (a
    hidden board is 'not found' to all but admins, and such a refusal is never kept)."""
    key = (name, gpu, top, caller.admin)
    answer = cache.get(key)
    if answer is None:
        generation = cache.generation  # before the read: a change heard during it keeps it out
        board = await gateway.boards.get_leaderboard(name, caller=caller)
        answer = RankingAnswer(board, await gateway.boards.rankings(board, gpu, top))
        cache.put(key, answer, generation)
    return answer
