"""What an API process keeps (gateway/http/api/caches.py), without a database: kept only while listening,
never a read that a change overtook, dropped by the notifications' payloads, evicted oldest first; ETags
matched as If-None-Match says; the NOTIFY payloads read back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.http.api.caches import (
    ApiCaches,
    BoardCache,
    CallerCache,
    RankingAnswer,
    RankingCache,
    etag_matches,
)
from gateway.store.changes import ALL_BOARDS, USERS, board_changed, parse_change
from gateway.store.records import LeaderboardRecord, RankedEntry, UserRecord


def board(board_id: int, name: str = "b") -> LeaderboardRecord:
    return LeaderboardRecord(board_id, name, "", {}, "mean", ["H100"])


def answer(board_id: int, user: str = "alice") -> RankingAnswer:
    entry = RankedEntry(
        1, user, "H100", 1e-5, "run-1", "k.py", "alpha", datetime(2026, 1, 1, tzinfo=UTC), "s-1"
    )
    return RankingAnswer(board(board_id), {"H100": [entry]})


def caches() -> ApiCaches:
    made = ApiCaches(RankingCache(True), CallerCache(10.0), BoardCache(True))
    made.listening(True)
    return made


def test_answers_are_kept_only_while_listening_and_never_across_a_change() -> None:
    kept = caches()
    rankings = kept.rankings
    key = ("b", "H100", 100, False)
    generation = rankings.generation
    kept.changed(board_changed(7))  # a change heard while the answer was being read
    rankings.put(key, answer(1), generation)
    assert rankings.get(key) is None
    rankings.put(key, answer(1), rankings.generation)
    assert rankings.get(key) is not None
    kept.listening(False)  # the LISTEN connection dropped: emptied, and nothing is kept meanwhile
    assert rankings.get(key) is None
    rankings.put(key, answer(1), rankings.generation)
    assert rankings.get(key) is None
    kept.listening(True)
    rankings.put(key, answer(1), rankings.generation)
    assert rankings.get(key) is not None


def test_notifications_drop_what_they_name() -> None:
    kept = caches()
    one, two = ("one", None, 100, False), ("two", None, 100, True)
    kept.rankings.put(one, answer(1), kept.rankings.generation)
    kept.rankings.put(two, answer(2), kept.rankings.generation)
    user = UserRecord(5, "carol", False, False)
    kept.callers.put("token", user, kept.callers.generation)
    kept.boards.put("one", board(1, "one"), kept.boards.generation)
    kept.changed(board_changed(2))  # one board's ranking: only its answers go
    assert kept.rankings.get(one) is not None and kept.rankings.get(two) is None
    assert kept.callers.get("token") == user and kept.boards.get("one") is not None
    kept.changed(USERS)
    assert kept.callers.get("token") is None and kept.rankings.get(one) is not None
    kept.changed(ALL_BOARDS)
    assert kept.rankings.get(one) is None and kept.boards.get("one") is None
    kept.callers.put("token", user, kept.callers.generation)
    kept.changed("something new")  # unknown: everything goes
    assert kept.callers.get("token") is None


def test_the_oldest_answer_goes_first_and_a_disabled_cache_keeps_nothing() -> None:
    rankings = RankingCache(True, max_entries=2)
    rankings.listening = True
    keys = [(f"b{n}", None, 100, False) for n in range(3)]
    rankings.put(keys[0], answer(0), 0)
    rankings.put(keys[1], answer(1), 0)
    assert rankings.get(keys[0]) is not None  # used: now the newest
    rankings.put(keys[2], answer(2), 0)
    assert rankings.get(keys[1]) is None and rankings.get(keys[0]) is not None
    rankings.drop_board(0)
    assert rankings.get(keys[0]) is None and rankings.get(keys[2]) is not None
    off = RankingCache(False)
    off.listening = True
    off.put(keys[0], answer(0), 0)
    assert off.get(keys[0]) is None
    callers = CallerCache(0)
    callers.listening = True
    callers.put("t", UserRecord(1, "u", False, False), 0)
    assert callers.get("t") is None


def test_a_kept_caller_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("gateway.http.api.caches.time.monotonic", lambda: now[0])
    callers = CallerCache(10.0)
    callers.listening = True
    callers.put("t", UserRecord(1, "u", False, False), callers.generation)
    now[0] += 9.9
    assert callers.get("t") is not None
    now[0] += 0.2
    assert callers.get("t") is None


def test_an_answer_renders_once_with_an_etag_that_if_none_match_names() -> None:
    first, other = answer(1), answer(1, user="bob")
    assert first.body() is first.body() and b'"alice"' in first.body()
    assert first.etag() != other.etag() and first.etag().startswith('"')
    tag = first.etag()
    for header in (tag, f"W/{tag}", f'"x", {tag}', "*"):
        assert etag_matches(header, tag), header
    for miss in (None, "", '"x"', tag[:-2] + '"'):
        assert not etag_matches(miss, tag), miss


def test_change_payloads_read_back() -> None:
    assert parse_change(board_changed(42)) == ("board", 42)
    assert parse_change(ALL_BOARDS) == ("boards", None) and parse_change(USERS) == ("users", None)
    for odd in ("board:", "board:x", "board:-1", "", "nonsense"):
        assert parse_change(odd) == ("unknown", None), odd
