"""The API's flood guard and token format, without a server."""

from __future__ import annotations

import pytest

from gateway.accounts import TOKEN_PREFIX, token_hash
from gateway.api.limits import TokenBucket, retry_after


def test_a_bucket_allows_a_minutes_worth_then_one_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("gateway.api.limits.time.monotonic", lambda: now[0])
    bucket = TokenBucket(per_minute=3)
    assert [bucket.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take("a")
    assert wait == pytest.approx(20.0)  # one token every 20 s
    assert bucket.take("b") == 0.0  # keys are independent
    now[0] += 19.0
    assert bucket.take("a") == pytest.approx(1.0)
    now[0] += 1.0
    assert bucket.take("a") == 0.0
    assert retry_after(0.2) == "1" and retry_after(20.0) == "20" and retry_after(20.01) == "21"


def test_a_full_table_forgets_only_keys_whose_buckets_refilled(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr("gateway.api.limits.time.monotonic", lambda: now[0])
    monkeypatch.setattr(TokenBucket, "MAX_KEYS", 3)
    bucket = TokenBucket(per_minute=60)
    bucket.take("old")
    now[0] = 120.0  # "old" refilled long ago
    bucket.take("busy")
    bucket.take("busy2")
    bucket.take("new")  # the table is full: "old" goes, the busy ones stay
    assert set(bucket._buckets) == {"busy", "busy2", "new"}


def test_tokens_are_kept_as_sha256_hashes() -> None:
    assert token_hash(TOKEN_PREFIX + "x") == token_hash("gwt_x")
    assert len(token_hash("gwt_x")) == 64 and token_hash("gwt_x") != token_hash("gwt_y")
    assert token_hash("\udcff") != ""  # undecodable input still hashes, never raises
