"""The HTTP API client of the remote CLI, against httpx.MockTransport: the API's error answers become the
gateway's exceptions (so the CLI's exit codes apply), the token is sent but never shown, an event stream
that breaks is reopened with Last-Event-ID without losing or repeating an event, URLs are checked, and
saved credentials are private. The API's run JSON renders in the one result table."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from gateway.cli.api_json import view_of_run
from gateway.cli.output import print_report
from gateway.client import credentials
from gateway.client.remote import RECONNECTS, RemoteGateway, api_url
from gateway.core.errors import (
    GatewayError,
    NotFoundError,
    RefusedError,
    RemoteError,
    SubmissionError,
    UserError,
)

URL = "https://gw.example.org"
TOKEN = "gwt_s3cret-value"
PUBLIC_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # a submission's public id
Handler = Callable[[httpx.Request], httpx.Response]


def remote(handler: Handler) -> RemoteGateway:
    return RemoteGateway(URL, TOKEN, transport=httpx.MockTransport(handler), reconnect_delay_s=0)


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handle


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (400, UserError, "give gpu_type"),
        (422, UserError, "give gpu_type"),
        (404, NotFoundError, "give gpu_type"),
        (413, SubmissionError, "give gpu_type"),
        (401, UserError, f"run `gateway login {URL}`"),
        (403, RefusedError, "give gpu_type"),
        (409, RefusedError, "give gpu_type"),
        (429, RefusedError, "give gpu_type"),
        (500, RemoteError, f"{URL} failed (HTTP 500): give gpu_type"),
        (503, RemoteError, "try again in 5 s"),
    ],
)
async def test_api_errors_become_the_gateways_exceptions(
    status: int, kind: type[GatewayError], words: str
) -> None:
    handler = answer(status, {"error": "give gpu_type"}, {"Retry-After": "5"})
    async with remote(handler) as gateway:
        with pytest.raises(GatewayError) as caught:
            await gateway.submit("k.py", b"pass\n", "board")
    assert type(caught.value) is kind
    assert words in str(caught.value)
    assert TOKEN not in str(caught.value)
    if status == 429:
        assert isinstance(caught.value, RefusedError) and caught.value.retry_after_s == 5
    if status in (403, 409, 429):  # refused, not bad input: the CLI's exit code 3
        assert isinstance(caught.value, RefusedError)


async def test_answers_that_are_not_the_api_and_lost_connections_name_the_url() -> None:
    async with remote(answer(502, "<html>Bad Gateway</html>")) as gateway:
        with pytest.raises(RemoteError, match=rf"{URL} failed \(HTTP 502\): <html>Bad Gateway"):
            await gateway.me()
    async with remote(answer(200, "<html>a login page</html>")) as gateway:
        with pytest.raises(RemoteError, match="not JSON: is it a gateway"):
            await gateway.me()
    async with remote(answer(301, "", {"Location": "https://elsewhere.example.org/"})) as gateway:
        with pytest.raises(RemoteError, match=re.escape("moved to https://elsewhere.example.org/")):
            await gateway.me()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    async with remote(refuse) as gateway:
        with pytest.raises(RemoteError, match=rf"cannot reach {URL}: \[Errno 111\] Connection refused"):
            await gateway.me()


async def test_server_text_is_shown_with_control_characters_escaped() -> None:
    async with remote(answer(400, {"error": "bad \x1b[2J name"})) as gateway:
        with pytest.raises(UserError) as caught:
            await gateway.me()
    assert str(caught.value) == "bad \\x1b[2J name"


async def test_the_token_goes_in_the_authorization_header_only() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"submission_id": PUBLIC_ID, "runs": []})

    async with remote(handle) as gateway:
        await gateway.submit("k.py", b"pass\n", "board", gpu_type="H100", mode="test")
        assert TOKEN not in repr(gateway)
    request = seen[0]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(request.url)
    assert request.url == f"{URL}/api/submissions"
    body = request.read().decode()
    assert 'name="gpu_type"' in body and 'name="mode"' in body and 'filename="k.py"' in body
    assert TOKEN not in body


def sse(*events: tuple[str, int | None, dict[str, Any]]) -> bytes:
    out = b": ping\n\n"
    for kind, event_id, data in events:
        out += f"event: {kind}\n".encode()
        if event_id is not None:
            out += f"id: {event_id}\n".encode()
        out += f"data: {json.dumps(data)}\n\n".encode()
    return out


def event(event_id: int, message: str, kind: str = "state") -> tuple[str, int, dict[str, Any]]:
    data = {"id": event_id, "run_id": "r-1", "at": "2026-01-01T00:00:00Z", "kind": kind, "state": "RUNNING"}
    if kind == "finished":
        data["run"] = {"run_id": "r-1", "passed": True}
    return kind, event_id, data | {"message": message}


class Broken(httpx.AsyncByteStream):
    """An event stream that sends some bytes, then loses the connection."""

    def __init__(self, sent: bytes) -> None:
        self.sent = sent

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.sent
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


async def test_a_broken_event_stream_is_reopened_after_the_last_event_seen() -> None:
    asked: list[str | None] = []
    end = ("end", None, {"runs": ["r-1"]})
    streams: list[httpx.AsyncByteStream] = [
        Broken(sse(event(1, "queued"), event(2, "RUNNING"))),
        httpx.ByteStream(sse(event(3, "phase test started", "progress"))),  # closed before its end
        httpx.ByteStream(
            sse(event(3, "phase test started", "progress"), event(4, "passed", "finished"), end)
        ),
    ]

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Last-Event-ID"))
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=streams.pop(0))

    async with remote(handle) as gateway:
        events = [e async for e in gateway.follow(PUBLIC_ID)]
    got = [(e.id, e.kind, e.message) for e in events]
    finished = events[-1]
    assert got == [(1, "state", "queued"), (2, "state", "RUNNING"), (3, "progress", "phase test started"),
                   (4, "finished", "passed")]  # fmt: skip
    assert asked == [None, "2", "3"]
    assert finished.run == {"run_id": "r-1", "passed": True}


async def test_a_stream_that_never_comes_back_is_given_up_with_the_url() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("Connection refused", request=request)

    async with remote(handle) as gateway:
        with pytest.raises(RemoteError, match=f"cannot reach {URL}"):
            async for _ in gateway.follow(PUBLIC_ID):
                pass
    assert calls == RECONNECTS + 1


async def test_an_event_stream_refused_is_the_apis_error() -> None:
    async with remote(answer(404, {"error": "no submission 7"})) as gateway:
        with pytest.raises(NotFoundError, match="no submission 7"):
            async for _ in gateway.follow(PUBLIC_ID):
                pass


@pytest.mark.parametrize(
    ("typed", "base"),
    [
        ("https://gw.example.org/", "https://gw.example.org"),
        (" https://gw.example.org/prefix/ ", "https://gw.example.org/prefix"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_urls_are_normalized(typed: str, base: str) -> None:
    assert api_url(typed) == base


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("http://gw.example.org", "use https"),
        ("http://10.0.0.5:8000", "use https"),
        ("ftp://gw.example.org", "not an http(s) URL"),
        ("gw.example.org", "not an http(s) URL"),
        ("https://user:pw@gw.example.org", "without a user"),
    ],
)
def test_urls_that_would_leak_the_token_or_are_not_urls_are_refused(typed: str, words: str) -> None:
    with pytest.raises(UserError, match=re.escape(words)):
        api_url(typed)


def test_credentials_are_private_kept_per_url_and_overridden_by_the_environment(tmp_path: Path) -> None:
    path = credentials.credentials_path({"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert path == tmp_path / "config" / "kernel-gateway" / "credentials.json"
    credentials.save(path, URL, TOKEN)
    credentials.save(path, "http://localhost:8000", "gwt_other")
    credentials.save(path, URL, "gwt_new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {URL: "gwt_new", "http://localhost:8000": "gwt_other"}
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temporary file left
    assert credentials.token_for(URL, path, {}).value == "gwt_new"
    from_env = credentials.token_for(URL, path, {"GATEWAY_TOKEN": "gwt_env"})
    assert from_env.value == "gwt_env" and "GATEWAY_TOKEN" in from_env.source
    with pytest.raises(UserError, match=re.escape("run `gateway login https://elsewhere.example.org`")):
        credentials.token_for("https://elsewhere.example.org", path, {})
    path.write_text("not json")
    with pytest.raises(UserError, match="is not a JSON object"):
        credentials.token_for(URL, path, {})
    assert credentials.credentials_path({"HOME": str(tmp_path)}).parts[-3:] == (
        ".config",
        "kernel-gateway",
        "credentials.json",
    )


def test_the_apis_run_renders_in_the_result_table() -> None:
    run = {
        "run_id": "4a278123-05b5",
        "user": "[b]alice[/]",
        "file_name": "correct.py",
        "site": "alpha",
        "partition": "h100",
        "gpu_type": "H100",
        "job_id": "1564",
        "state": "COMPLETED",
        "passed": True,
        "score": 14.6e-6,
        "error": None,
        "tests": [{"spec": "size: 127", "passed": True, "error": None}],
        "benchmarks": [
            {"spec": "size: 16384", "passed": True, "runs": 1000, "mean_s": 7.5e-6, "best_s": 6.5e-6},
            {"spec": "size: 65536", "passed": False, "runs": 0, "mean_s": None, "error": "timed out"},
        ],
        "system": {"hostname": "vm", "cpu": "AMD EPYC", "torch": "2.13.0+cpu"},
        "future_field": {"ignored": True},
    }
    console = Console(record=True, width=200)
    print_report(console, view_of_run(run, secret_passed=False))
    text = console.export_text()
    assert "correct.py by [b]alice[/] on alpha/h100 (H100), job 1564, run 4a278123-05b5" in text
    assert "size: 127" in text and "7.500 µs" in text and "6.500 µs" in text and "1000" in text
    assert "timed out" in text
    assert "ran on vm: AMD EPYC, torch 2.13.0+cpu" in text
    assert "secret rerun (hidden inputs): failed (the run is not ranked)" in text
    assert "passed  score 14.600 µs  (state COMPLETED)" in text
    failed = Console(record=True, width=200)
    print_report(
        failed, view_of_run({"run_id": "r", "passed": False, "error": "no such site", "state": "FAILED"})
    )
    assert "failed  no such site  (state FAILED)" in failed.export_text()
