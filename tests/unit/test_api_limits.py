"""The API's flood guard and token format, without a server: the token-bucket maths and its mirror of the
shared buckets, the metrics token, ids out of range, resume points, the body deadline, the server's
protocol."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.config.settings import Settings
from gateway.core.errors import StoreError
from gateway.core.validation import BIGINT_MAX, public_submission_key
from gateway.http.api.limits import BodyLimit, SharedBucket, TokenBucket, retry_after
from gateway.http.api.metrics import metrics_authorized
from gateway.http.api.server import guarded_protocol
from gateway.http.api.streams import resume_from
from gateway.service.accounts import TOKEN_PREFIX, token_hash
from gateway.service.limits import TokenTake


def test_a_bucket_allows_a_minutes_worth_then_one_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("gateway.http.api.limits.time.monotonic", lambda: now[0])
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
    monkeypatch.setattr("gateway.http.api.limits.time.monotonic", lambda: now[0])
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


def test_the_mirror_waits_without_taking_and_records_what_the_database_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [50.0]
    monkeypatch.setattr("gateway.http.api.limits.time.monotonic", lambda: now[0])
    mirror = TokenBucket(per_minute=6)  # one every 10 s
    assert mirror.wait("k") == 0.0 and mirror.wait("k") == 0.0  # a new key is full; waiting takes nothing
    mirror.record("k", 0.25, 50.0)
    assert mirror.wait("k") == pytest.approx(7.5)
    now[0] += 7.5
    assert mirror.wait("k") == 0.0


class FakeLimits:
    """The service's take_token: scripted answers, or the database away."""

    def __init__(self, answers: list[TokenTake] | None) -> None:
        self.answers = answers
        self.asked = 0

    async def take_token(self, key: str, per_minute: float) -> TokenTake:
        self.asked += 1
        if self.answers is None:
            raise StoreError("database unreachable")
        return self.answers.pop(0)


async def test_a_key_seen_empty_is_refused_without_asking_the_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr("gateway.http.api.limits.time.monotonic", lambda: now[0])
    fake = FakeLimits([TokenTake(True, 0.5, 0.0), TokenTake(False, 0.9, 1.0)])
    bucket = SharedBucket(fake, per_minute=6)  # type: ignore[arg-type]
    assert await bucket.take("k") == 0.0  # the database gave one; half a token left there
    assert await bucket.take("k") == pytest.approx(5.0)  # the mirror knows: not asked
    assert fake.asked == 1
    now[0] += 5.0
    assert await bucket.take("k") == pytest.approx(1.0)  # asked again: another process took it meanwhile
    assert fake.asked == 2


async def test_requests_are_let_through_while_the_database_is_away() -> None:
    bucket = SharedBucket(FakeLimits(None), per_minute=1)  # type: ignore[arg-type]
    assert [await bucket.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]


def test_the_metrics_token_is_checked_only_when_set() -> None:
    open_ = Settings(database_url=None)
    closed = Settings(database_url=None, metrics_token=SecretStr("s3cret"))
    assert metrics_authorized(open_, None) and metrics_authorized(open_, "Bearer whatever")
    assert metrics_authorized(closed, "Bearer s3cret") and metrics_authorized(closed, "bearer s3cret")
    for wrong in (None, "", "Bearer", "Bearer s3cre", "Basic s3cret", "Bearer s3cret2", "Bearer \udcff"):
        assert not metrics_authorized(closed, wrong), wrong


def test_numeric_ids_out_of_bigint_range_name_nothing() -> None:
    assert public_submission_key(1, by_number=True) == 1
    assert public_submission_key(BIGINT_MAX, by_number=True) == BIGINT_MAX
    for bad in (0, -1, BIGINT_MAX + 1, 10**30):
        assert public_submission_key(bad, by_number=True) is None  # answered "no submission" (404)


@pytest.mark.parametrize(
    ("header", "after", "expected"),
    [
        (None, 5, 5),
        ("7", 5, 7),
        ("3", 5, 5),
        ("²", 0, 0),  # a digit to isdigit(), not to int()
        ("١٢٣", 0, 0),  # int() would take these
        ("9" * 5000, 0, BIGINT_MAX),  # past int()'s digit limit
        ("0" * 30 + "12", 0, 12),
        ("-3", 4, 4),
    ],
)
async def test_a_resume_point_is_read_safely(header: str | None, after: int, expected: int) -> None:
    assert await resume_from(after, header) == expected


async def test_a_body_too_slow_to_arrive_is_answered_408_and_the_app_sees_a_disconnect() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        seen.append(await receive())  # the deadline passes here
        await send({"type": "http.response.start", "status": 400, "headers": []})  # goes nowhere
        await send({"type": "http.response.body", "body": b"late"})

    chunks: list[Message] = [{"type": "http.request", "body": b"ab", "more_body": True}]

    async def receive() -> Message:
        if chunks:
            return chunks.pop()
        await asyncio.sleep(10)
        raise AssertionError("not reached")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": [(b"content-length", b"10")], "method": "POST", "path": "/"}
    await BodyLimit(app, max_bytes=100, file_limit=50, timeout_s=0.05)(scope, receive, send)
    assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"error": "the request's body did not arrive in 0.05 s"}
    assert len(sent) == 2


def test_the_server_protocol_carries_the_settings_time_limits() -> None:
    settings = Settings(database_url=None, api_header_timeout_s=3.0, api_body_timeout_s=7.0)
    for http in ("auto", "h11", "httptools"):
        protocol = guarded_protocol(settings, http)
        assert protocol.header_timeout_s == 3.0 and protocol.body_timeout_s == 7.0  # type: ignore[attr-defined]
    assert issubclass(guarded_protocol(settings, "h11"), H11Protocol)


class SlowLimits:
    """take_token and take_tokens that answer when let: a bucket per key holding ``tokens``."""

    def __init__(self, tokens: int) -> None:
        self.tokens: dict[str, int] = {}
        self.full = tokens
        self.asked: list[tuple[str, int]] = []
        self.go = asyncio.Event()

    async def take_token(self, key: str, per_minute: float) -> TokenTake:
        took = await self.take_tokens(key, per_minute, 1)
        return TokenTake(took.taken, took.tokens, took.wait_s)

    async def take_tokens(self, key: str, per_minute: float, count: int) -> TokenTake:
        self.asked.append((key, count))
        await self.go.wait()
        granted = min(count, self.tokens.get(key, self.full))
        self.tokens[key] = self.tokens.get(key, self.full) - granted
        return TokenTake(granted > 0, 0.0, 0.0 if granted == count else 6.0, granted)


async def test_takes_that_arrive_together_are_asked_for_in_one_statement() -> None:
    slow = SlowLimits(tokens=4)
    bucket = SharedBucket(slow, per_minute=600)  # type: ignore[arg-type]
    first = asyncio.create_task(bucket.take("k"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(bucket.take("k")) for _ in range(5)]
    other = asyncio.create_task(bucket.take("other"))  # another key is asked for on its own
    await asyncio.sleep(0)
    slow.go.set()
    assert await first == 0.0
    waits = await asyncio.gather(*rest)
    assert sorted(waits) == [0.0, 0.0, 0.0, 6.0, 6.0]  # the bucket held 4: no more than 4 let in
    assert await other == 0.0
    assert sorted(slow.asked) == [("k", 1), ("k", 5), ("other", 1)]  # the five that waited: together
