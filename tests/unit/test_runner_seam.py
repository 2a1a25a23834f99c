"""The command seam on this machine: argv only, stdin, check, and a timeout that kills the whole group."""

import time

import pytest

from gateway.core.commands import SubprocessRunner
from gateway.core.errors import CommandError
from gateway.running.transport.local import LocalTransport


async def test_argv_is_never_a_shell_line() -> None:
    done = await SubprocessRunner().run(["printf", "%s", "$(echo pwned); `id`"])
    assert done.stdout == "$(echo pwned); `id`"


async def test_stdin_and_check() -> None:
    done = await SubprocessRunner().run(["cat"], stdin="#!/bin/bash\necho hi\n")
    assert done.stdout == "#!/bin/bash\necho hi\n"
    failed = await SubprocessRunner().run(["sh", "-c", "echo oops >&2; exit 3"], check=False)
    assert failed.exit_code == 3 and failed.stderr == "oops\n"
    with pytest.raises(CommandError) as info:
        await SubprocessRunner().run(["sh", "-c", "echo oops >&2; exit 3"])
    assert info.value.exit_code == 3 and "oops" in str(info.value)


async def test_timeout_kills_the_process_group() -> None:
    started = time.monotonic()
    with pytest.raises(CommandError) as info:
        # the child sleeps on after its parent shell: the group kill must take it too
        await SubprocessRunner().run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert info.value.timed_out and time.monotonic() - started < 5


async def test_local_transport_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    transport = LocalTransport()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("hello")
    await transport.upload_dir(tmp_path / "src", str(tmp_path / "dst"))
    assert await transport.read_file(str(tmp_path / "dst" / "a.txt"), 3) == b"hel"
    assert await transport.read_file(str(tmp_path / "nope"), 10) is None
