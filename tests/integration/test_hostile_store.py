"""Hostile strings through the service into PostgreSQL and back: quotes, SQL fragments, markup, unicode,
very long strings, control characters and undecodable bytes, as user names, leaderboard names, file names,
descriptions and code. Each is stored and read back verbatim, or refused with a clear message (UserError)
and nothing is stored; no table is harmed. The CLI refuses a file that is not UTF-8, naming it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config.tasks import load_task
from gateway.core.errors import SubmissionError, UserError
from gateway.service.facade import OPERATOR, Gateway
from gateway.service.model import Submission, SubmitRequest
from tests.conftest import PROBLEMS, solution
from tests.integration.test_cli_admin import cli, flat, ok

pytestmark = pytest.mark.integration
TASK = load_task(PROBLEMS / "vectoradd")
CODE = solution("vectoradd", "correct.py")

# stored verbatim (each gets a unique suffix: the database is shared)
NAMES = {
    "quotes": 'o\'brien "bob" `tick` \\back\\',
    "sql": "'; DROP TABLE runs; --",
    "sql or": "x' OR '1'='1",
    "like wildcards": "100% _wild_ \\%",
    "markup": "[bold]b[/] [/] [link=http://x]y[/link]",
    "shell": "$(touch /tmp/pwned) `id` ; rm -rf ~ #",
    "unicode": "Zoë 🚀 日本語 مرحبا Ωμέγα",
    "emoji sequence": "👨\u200d👩\u200d👧 family",
    "combining": "e\u0301 and é",
    "json": '{"name": null, "a": [1, 2]}',
}
# refused: (value, what the message says)
BAD_NAMES = {
    "10,000 characters": ("n" * 10_000, "(10000 characters) cannot be used"),
    "201 characters": ("n" * 201, "(201 characters) cannot be used"),
    "newline": ("a\nb", "cannot be used: one line"),
    "tab": ("a\tb", "cannot be used"),
    "escape sequence": ("\x1b[31mred", "cannot be used"),
    "NUL": ("a\x00b", "cannot be used"),
    "bidi override": ("abc\u202edcba", "cannot be used"),
    "undecodable byte": ("caf\udce9", r"'caf\udce9'"),
    "blank": ("   ", "not blank"),
    "empty": ("", "not blank"),
    "joiner alone": ("\u200d", "not blank"),
}


def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def board(gateway: Gateway) -> AsyncIterator[str]:
    name = f"hostile-{tag()}"
    await gateway.boards.create_leaderboard(name, TASK, ["H100"], caller=OPERATOR)
    yield name
    await gateway.boards.delete_leaderboard(name, caller=OPERATOR)


async def enqueue(
    gateway: Gateway, board: str, *, user: str = "hostile-tester", file_name: str = "k.py", code: str = CODE
) -> Submission:
    return await gateway.enqueue(
        SubmitRequest(code, file_name, user, leaderboard=board, gpu_type="H100", mode="test")
    )


async def submissions(gateway: Gateway, board: str) -> int:
    return (await gateway.boards.leaderboard_summary(board, caller=OPERATOR)).submissions


@pytest.mark.parametrize("kind", NAMES)
async def test_user_names_are_stored_verbatim(gateway: Gateway, board: str, kind: str) -> None:
    user = f"{NAMES[kind]} {tag()}"
    run_id = (await enqueue(gateway, board, user=user)).public_run.run_id
    assert (await gateway.run(run_id, caller=OPERATOR)).user_name == user
    [listed] = await gateway.runs(user=user, caller=OPERATOR)
    assert listed.run_id == run_id and listed.user_name == user
    assert await gateway.boards.set_banned(user, True, caller=OPERATOR) is True
    with pytest.raises(UserError, match="is banned from submitting"):
        await enqueue(gateway, board, user=user)
    assert await gateway.boards.set_banned(user, False, caller=OPERATOR) is True


async def test_the_longest_user_name_is_stored_verbatim(gateway: Gateway, board: str) -> None:
    user = tag() + "ü" * 192  # 200 characters, 392 bytes
    run_id = (await enqueue(gateway, board, user=user)).public_run.run_id
    assert (await gateway.run(run_id, caller=OPERATOR)).user_name == user


@pytest.mark.parametrize("kind", BAD_NAMES)
async def test_bad_user_names_are_refused(gateway: Gateway, board: str, kind: str) -> None:
    user, message = BAD_NAMES[kind]
    with pytest.raises(UserError, match="user name") as refused:
        await enqueue(gateway, board, user=user)
    assert message in str(refused.value) and len(str(refused.value)) < 300  # a 10,000-character name is cut
    with pytest.raises(UserError, match="user name"):
        await gateway.boards.set_banned(user, True, caller=OPERATOR)
    with pytest.raises(UserError, match="user name"):
        await gateway.runs(user=user, caller=OPERATOR)
    assert await submissions(gateway, board) == 0


@pytest.mark.parametrize("kind", NAMES)
async def test_leaderboard_names_are_stored_verbatim(gateway: Gateway, kind: str) -> None:
    name = f"{NAMES[kind]} {tag()}"
    canary = f"canary-{tag()}"
    await gateway.boards.create_leaderboard(canary, TASK, ["H100"], caller=OPERATOR)
    canary_run = (await enqueue(gateway, canary)).public_run.run_id
    try:
        created = await gateway.boards.create_leaderboard(
            name, TASK, ["H100"], description=f"about {name}", caller=OPERATOR
        )
        assert created.name == name and created.description == f"about {name}"
        assert (await gateway.boards.get_leaderboard(name, caller=OPERATOR)).name == name
        assert name in [b.name for b in await gateway.boards.leaderboards(caller=OPERATOR)]
        await gateway.boards.set_rate_limit(name, "test", 5, 60, caller=OPERATOR)
        assert (await gateway.boards.leaderboard(name, caller=OPERATOR)).limits[0].max_submissions == 5
        run_id = (await enqueue(gateway, name)).public_run.run_id
        record = await gateway.run(run_id, caller=OPERATOR)
        assert record.leaderboard == name
        assert [r.run_id for r in await gateway.runs(leaderboard=name, caller=OPERATOR)] == [run_id]
        assert (await gateway.boards.leaderboard_summary(name, caller=OPERATOR)).submissions == 1
        assert await gateway.boards.delete_leaderboard(name, caller=OPERATOR) == (1, 1)
        with pytest.raises(UserError, match="no leaderboard named"):
            await gateway.boards.get_leaderboard(name, caller=OPERATOR)
        # no table was harmed: the canary board and its run are as they were
        assert (await gateway.boards.leaderboard_summary(canary, caller=OPERATOR)).runs == 1
        assert (await gateway.run(canary_run, caller=OPERATOR)).state == "QUEUED"
    finally:
        await gateway.boards.delete_leaderboard(canary, caller=OPERATOR)


async def test_the_longest_leaderboard_name_is_stored_verbatim(gateway: Gateway) -> None:
    name = tag() + "x" * 192
    assert (await gateway.boards.create_leaderboard(name, TASK, ["H100"], caller=OPERATOR)).name == name
    assert await gateway.boards.delete_leaderboard(name, caller=OPERATOR) == (0, 0)


@pytest.mark.parametrize("kind", BAD_NAMES)
async def test_bad_leaderboard_names_are_refused(gateway: Gateway, kind: str) -> None:
    name, message = BAD_NAMES[kind]
    with pytest.raises(UserError, match="leaderboard name") as refused:
        await gateway.boards.create_leaderboard(name, TASK, ["H100"], caller=OPERATOR)
    assert message in str(refused.value)
    for lookup in (
        gateway.boards.get_leaderboard,
        gateway.boards.delete_leaderboard,
        gateway.boards.leaderboard_summary,
    ):
        with pytest.raises(UserError, match="leaderboard name"):
            await lookup(name, caller=OPERATOR)
    with pytest.raises(UserError, match="leaderboard name"):
        await gateway.enqueue(
            SubmitRequest(CODE, "k.py", "someone", TASK, leaderboard=name, mode="test", admin=True)
        )


@pytest.mark.parametrize(
    "file_name",
    [
        "sol'; DROP TABLE submissions; --.py",
        'my "quoted" file.py',
        "[b]bold [link=x]y.py",
        "café ☕ カーネル.py",
        "-rf .py",
        "..py",
        "x" * 252 + ".py",  # 255 characters: the limit
    ],
)
async def test_file_names_are_stored_verbatim(gateway: Gateway, board: str, file_name: str) -> None:
    run_id = (await enqueue(gateway, board, file_name=file_name)).public_run.run_id
    assert (await gateway.run(run_id, caller=OPERATOR)).file_name == file_name


BAD_FILE_NAMES = ["x" * 253 + ".py", "a/b.py", "../k.py", "a\nb.py", "a\rb.py", "\x1b[2Jk.py", "k\x00.py"]


@pytest.mark.parametrize("file_name", [*BAD_FILE_NAMES, "caf\udce9.py", ""])
async def test_bad_file_names_are_refused(gateway: Gateway, board: str, file_name: str) -> None:
    with pytest.raises(SubmissionError, match=r"the file name .* cannot be used: one line"):
        await enqueue(gateway, board, file_name=file_name)
    assert await submissions(gateway, board) == 0


@pytest.mark.parametrize(
    "description",
    [
        "Line one\n\tindented 'quoted' \"double\"\n'; DROP TABLE leaderboards; --\n[red]not markup[/red]",
        "Unicode: ∑ ∫ 🚀 عربى 中文, e\u0301",
        "d" * 10_000,
        "",
    ],
)
async def test_descriptions_are_stored_verbatim(gateway: Gateway, description: str) -> None:
    name = f"described-{tag()}"
    assert (
        await gateway.boards.create_leaderboard(name, TASK, description=description, caller=OPERATOR)
    ).description == description
    try:
        assert (await gateway.boards.get_leaderboard(name, caller=OPERATOR)).description == description
        assert (await gateway.boards.leaderboard_summary(name, caller=OPERATOR)).description == description
    finally:
        await gateway.boards.delete_leaderboard(name, caller=OPERATOR)


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ("d" * 20_001, "the description is 20001 characters long; at most 20000"),
        ("a\x00b", r"the description holds the character '\x00'"),
        ("\x1b[31mred", r"the description holds the character '\x1b'"),
        ("a\r\nb", r"the description holds the character '\r'"),
        ("caf\udce9", r"the description holds the character '\udce9'"),
        ("evil \u202e", r"the description holds the character '\u202e'"),
    ],
)
async def test_bad_descriptions_are_refused(gateway: Gateway, description: str, message: str) -> None:
    name = f"described-{tag()}"
    with pytest.raises(UserError) as refused:
        await gateway.boards.create_leaderboard(name, TASK, description=description, caller=OPERATOR)
    assert message in str(refused.value)
    assert name not in [b.name for b in await gateway.boards.leaderboards(caller=OPERATOR)]


@pytest.mark.parametrize(
    "code",
    [
        CODE + '\n# \'; DROP TABLE code_blobs; -- "quoted" `tick` $(id) [b]x[/b]\n',
        CODE + "\n# Unicode: ∑ 🚀 日本語 e\u0301 \u202e reversed \u200b\n",
        CODE.replace("\n", "\r\n") + "# \x1b[31m escape \x07 bell \x0c form feed\n",
        CODE + "\n" + "# padding line\n" * 15_000,  # 225,000 bytes: under the 256 KiB limit
    ],
    ids=["sql and quotes", "unicode", "control characters", "large"],
)
async def test_code_is_stored_verbatim(gateway: Gateway, board: str, code: str) -> None:
    """Read back as a worker gets it: by claiming the run (then given back and cancelled)."""
    assert gateway.store is not None
    run_id = (await enqueue(gateway, board, code=code)).public_run.run_id
    worker = f"hostile-test-{tag()}"
    [claimed] = await gateway.store.claim(worker, 1, 60.0, [run_id])
    await gateway.store.release(worker, [run_id])
    assert claimed.code == code
    assert "cancelled before it started" in await gateway.cancel_run(run_id, caller=OPERATOR)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (CODE + "\x00", "contains NUL bytes"),
        (CODE + "# caf\udce9\n", "is not UTF-8 text (surrogates not allowed at"),
        ("#" * (256 * 1024 + 1), "is 262145 bytes; the limit is 262144 bytes"),
        (" \n\t\n", "is empty"),
    ],
    ids=["NUL", "undecodable", "too large", "blank"],
)
async def test_bad_code_is_refused(gateway: Gateway, board: str, code: str, message: str) -> None:
    with pytest.raises(SubmissionError) as refused:
        await enqueue(gateway, board, code=code)
    assert message in str(refused.value)
    assert await submissions(gateway, board) == 0


def test_the_cli_refuses_files_it_cannot_store(dev_env: dict[str, str], tmp_path: Path) -> None:
    """Through `gateway submit`: a file that is not UTF-8, a file name that is not, a user name from
    bytes that are not; each refused naming what is wrong, exit code 2, nothing stored."""
    board, user = f"hostile-cli-{tag()}", f"cli-{tag()}"
    ok(cli(dev_env, "leaderboard", "create", board, "--task", str(PROBLEMS / "vectoradd"), "--gpu", "H100"))
    try:
        latin1 = tmp_path / "latin1 kernel.py"
        latin1.write_bytes(CODE.encode() + b"# caf\xe9 \xff\xfe\n")
        done = cli(dev_env, "submit", str(latin1), "--leaderboard", board, "--mode", "test", "--user", user)
        assert done.returncode == 2
        offset = len(CODE.encode()) + 5
        assert (
            f"error: '{latin1.name}' is not UTF-8 text (byte 0xe9 at offset {offset}): save it as UTF-8"
            in (flat(done.stdout))
        )

        odd_name = os.fsencode(tmp_path) + b"/caf\xe9.py"
        Path(os.fsdecode(odd_name)).write_text(CODE)
        done = cli(dev_env, "submit", odd_name, "--leaderboard", board, "--mode", "test", "--user", user)
        assert done.returncode == 2
        assert "the file name 'caf\\udce9.py' cannot be used: one line of printable characters" in done.stdout

        correct = str(PROBLEMS / "vectoradd" / "solutions" / "correct.py")
        done = cli(dev_env, "submit", correct, "--leaderboard", board, "--mode", "test", "--user", b"bob\xff")
        assert done.returncode == 2 and "user name 'bob\\udcff' (4 characters) cannot be used" in done.stdout

        listed = flat(ok(cli(dev_env, "leaderboard", "list")))
        assert f"{board} H100 none (open) 0 0" in listed  # nothing stored
    finally:
        ok(cli(dev_env, "leaderboard", "delete", board, "--yes"))


def test_the_cli_shows_hostile_names_as_written(dev_env: dict[str, str]) -> None:
    name = f"[/] [bold]'; DROP TABLE runs; --[/bold] {tag()}"
    task = str(PROBLEMS / "vectoradd")
    created = cli(dev_env, "leaderboard", "create", name, "--task", task, "--gpu", "H100")
    try:
        assert f"created leaderboard {name} (public)" in ok(created)
        assert f"{name} H100 none (open)" in flat(ok(cli(dev_env, "leaderboard", "list")))
        assert f"{name} (ranked by geom" in flat(ok(cli(dev_env, "leaderboard", "show", name)))
        # the error names it: rich used to read the [/] in it as markup and crash
        missing = cli(dev_env, "leaderboard", "show", f"{name}-missing")
        assert missing.returncode == 2
        assert f"error: no leaderboard named {name + '-missing'!r}" in missing.stdout
        long = cli(dev_env, "leaderboard", "show", "n" * 10_000)
        assert long.returncode == 2 and "(10000 characters) cannot be used" in long.stdout
        assert len(long.stdout) < 400
    finally:
        assert f"deleted leaderboard {name} with 0" in ok(cli(dev_env, "leaderboard", "delete", name))
