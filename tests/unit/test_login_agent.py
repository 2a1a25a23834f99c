"""The login agent, run here as a real subprocess (LocalTransport): many files followed on one process,
each line framed so no file's content can pass for another's, and bundles written and submitted."""

import asyncio
import contextlib
import json
import os
import select
import stat
import sys
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from gateway.core.errors import TransportError
from gateway.running.backends import login_agent
from gateway.running.backends.login_agent import LoginAgent
from gateway.running.backends.login_agent_script import MAX_LINE, start_watcher
from gateway.running.transport.local import LocalTransport


@pytest.fixture
async def agent() -> AsyncGenerator[LoginAgent, None]:
    agent = LoginAgent(LocalTransport(), "here", python=sys.executable)
    assert await agent.ready()
    yield agent
    await agent.close()


async def collect(agent: LoginAgent, path: Path, count: int, timeout: float = 10.0) -> list[str]:
    """The first ``count`` lines of the follow of ``path``."""
    got: list[str] = []

    async def read() -> None:
        async with contextlib.aclosing(agent.follow(str(path))) as lines:
            async for line in lines:
                got.append(line)
                if len(got) == count:
                    return

    await asyncio.wait_for(read(), timeout)
    return got


async def test_one_agent_follows_many_files_and_no_file_can_pass_lines_off_as_anothers(
    agent: LoginAgent, tmp_path: Path
) -> None:
    victim, attacker = tmp_path / "victim.log", tmp_path / "attacker.log"
    victim.write_text("v1\n")
    # what a submission may print: fake frames for other keys (the victim's is 1, the attacker's 2),
    # quotes, backslashes, a NUL, bytes that are not UTF-8
    forged = [
        '["line", 1, "[harness] result written"]',
        '"]\n["line", 1, "injected"]',
        '\\"], ["line", 1, "x',
        "nul\x00byte",
    ]
    attacker.write_bytes("\n".join(forged).encode() + b"\n\xff\xfe\n")
    victim_lines: list[str] = []

    async def follow_victim() -> None:
        async with contextlib.aclosing(agent.follow(str(victim))) as lines:
            async for line in lines:
                victim_lines.append(line)

    reader = asyncio.create_task(follow_victim())
    attacker_lines = await collect(agent, attacker, 6)
    with victim.open("a") as handle:
        handle.write("v2\n")
    for _ in range(100):
        if len(victim_lines) == 2:
            break
        await asyncio.sleep(0.02)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    assert victim_lines == ["v1", "v2"]
    assert attacker_lines == [
        '["line", 1, "[harness] result written"]',
        '"]',
        '["line", 1, "injected"]',
        '\\"], ["line", 1, "x',
        "nul\x00byte",
        "\ufffd\ufffd",
    ]
    assert agent.starts == 1


async def test_a_hundred_files_on_one_agent(agent: LoginAgent, tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.log" for i in range(100)]
    for i, path in enumerate(paths):
        path.write_text(f"first {i}\n")
    readers = [asyncio.create_task(collect(agent, path, 2)) for path in paths]
    await asyncio.sleep(0.3)
    for i, path in enumerate(paths):
        with path.open("a") as handle:
            handle.write(f"second {i}\n")
    assert await asyncio.gather(*readers) == [[f"first {i}", f"second {i}"] for i in range(100)]
    assert agent.starts == 1


async def test_lines_are_capped_and_a_replaced_file_is_followed_anew(
    agent: LoginAgent, tmp_path: Path
) -> None:
    path = tmp_path / "out.log"
    path.write_text("x" * (3 * MAX_LINE) + "\nshort\n")
    got: list[str] = []

    async def read() -> None:
        async with contextlib.aclosing(agent.follow(str(path))) as lines:
            async for line in lines:
                got.append(line)

    reader = asyncio.create_task(read())
    await wait_for_count(got, 2)
    fresh = tmp_path / "fresh.log"
    fresh.write_text("new start\n")
    fresh.replace(path)
    await wait_for_count(got, 3)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    assert got == ["x" * MAX_LINE, "short", "new start"]


async def wait_for_count(lines: list[str], count: int) -> None:
    for _ in range(250):
        if len(lines) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {lines!r}")


async def test_a_reader_that_falls_behind_gets_an_error_not_the_others(
    agent: LoginAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(login_agent, "MAX_QUEUED_LINES", 10)
    flood, calm = tmp_path / "flood.log", tmp_path / "calm.log"
    flood.write_text("".join(f"{i}\n" for i in range(50)))
    calm.write_text("calm\n")
    lines = agent.follow(str(flood))
    first = await anext(lines)  # then read nothing while the agent sends the rest
    assert first == "0"
    assert await collect(agent, calm, 1) == ["calm"]
    with pytest.raises(TransportError, match="fell 10 lines behind"):
        async for _ in lines:
            pass
    await lines.aclose()


async def test_a_dead_agent_fails_its_follows_and_starts_again_on_next_use(
    agent: LoginAgent, tmp_path: Path
) -> None:
    path = tmp_path / "out.log"
    path.write_text("one\n")
    lines = agent.follow(str(path))
    assert await anext(lines) == "one"
    channel = agent._channel
    assert channel is not None
    channel.close()
    with pytest.raises(TransportError):
        await asyncio.wait_for(anext(lines), 10)
    await lines.aclose()
    assert await agent.ready()
    assert await collect(agent, path, 1) == ["one"]
    assert agent.starts == 2


async def test_submit_writes_the_bundle_and_answers_with_sbatchs_output(
    agent: LoginAgent, tmp_path: Path
) -> None:
    sbatch = tmp_path / "sbatch"
    sbatch.write_text('#!/bin/sh\necho "$@" > "$(dirname "$2")/argv"\necho "4242;alpha"\n')
    sbatch.chmod(0o755)
    files = [
        ("job.sh", b"#!/bin/sh\n", 0o755),
        ("harness/x/y.py", b"print(1)\n", 0o644),
        ("key", b"k\n", 0o600),
    ]
    done = await agent.submit(str(tmp_path / "work"), "run-1", str(sbatch), files, 10)
    assert (done.exit_code, done.stdout) == (0, "4242;alpha\n")
    root = tmp_path / "work" / "run-1"
    assert (root / "argv").read_text() == f"--parsable {root}/job.sh\n"
    assert (root / "harness" / "x" / "y.py").read_bytes() == b"print(1)\n"
    assert stat.S_IMODE((root / "key").stat().st_mode) == 0o600
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    # a second submit on the same agent right after: the channel's framing kept its place
    done = await agent.submit(str(tmp_path / "work"), "run-2", str(sbatch), files, 10)
    assert done.stdout == "4242;alpha\n"


@pytest.mark.parametrize(
    ("run_id", "name"), [("run-3", "../escape"), ("run-3", "/abs"), ("..", "job.sh"), ("run-3", "a//b")]
)
async def test_submit_refuses_names_outside_the_bundle(
    agent: LoginAgent, tmp_path: Path, run_id: str, name: str
) -> None:
    work = tmp_path / "work"
    done = await agent.submit(str(work), run_id, "/bin/false", [(name, b"x", 0o644)], 10)
    assert done.exit_code == 125 and "login agent: ValueError" in done.stderr
    assert not (tmp_path / "escape").exists() and not Path("/abs").exists()


async def test_an_agent_that_cannot_start_says_so_and_is_not_tried_again_at_once() -> None:
    agent = LoginAgent(LocalTransport(), "here", python="/bin/false")
    assert not await agent.ready()
    assert not await agent.ready()
    assert agent.starts == 0


def test_frames_are_one_json_array_a_line() -> None:
    """What the agent sends for a line holding a newline-free fake frame: one line, the text escaped."""
    from gateway.running.backends.login_agent import _frame

    raw = json.dumps(["line", 7, '"], ["line", 1, "x"]']).encode()
    assert b"\n" not in raw
    assert _frame(raw) == ("line", 7, ['"], ["line", 1, "x"]'])
    assert _frame(b'["line", "7", "x"]') is None
    assert _frame(b'["done", 1, "0", "", ""]') is None
    assert _frame(b"not json") is None


def test_the_watcher_sees_a_followed_file_change_at_once(tmp_path: Path) -> None:
    """On Linux the agent is woken by inotify when a followed file's folder changes, rather than at its
    next look (every TICK_S, what remains where inotify cannot be had, and on NFS)."""
    watcher = start_watcher()
    assert watcher is not None
    path = tmp_path / "output.log"
    path.write_text("")
    watcher.add(str(path))
    watcher.add(str(path))  # a second follow in the same folder shares its watch
    assert select.select([watcher.fd], [], [], 0)[0] == []
    path.write_text("line\n")
    assert select.select([watcher.fd], [], [], 1.0)[0] == [watcher.fd]
    watcher.drain()
    assert select.select([watcher.fd], [], [], 0)[0] == []
    watcher.remove(str(path))
    assert str(tmp_path) in watcher.folders
    watcher.remove(str(path))
    assert watcher.folders == {}
    os.close(watcher.fd)
