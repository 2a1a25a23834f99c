"""Modal containers leave nothing of one run to the next: each serves one input, and the function body
(remote_job.run_bundle) itself kills whatever the job started and removes its folders, whether the job
passed, failed or ran out of time. Real processes, through the fake Modal client (Function.local)."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import io
import os
import tarfile
import time
from pathlib import Path
from typing import Any

import modal
import pytest

from gateway.running.backends import modal_app
from tests.fake_modal import LocalModalClient

# Every way a job script can leave a process behind: in the background; in a session of its own
# (setsid); orphaned by a subshell that exits (a double fork); in a process group of its own (job
# control). And a file in its TMPDIR, and a folder it made unreadable.
STRAY_JOB = """\
sleep 300 & echo "pid $!"
setsid sleep 301 & echo "pid $!"
( sleep 302 & echo "pid $! " ) ; true
set -m; sleep 303 & echo "pid $!"; set +m
echo left > "$TMPDIR/leftover" && echo "path $TMPDIR/leftover"
mkdir locked && touch locked/file && chmod 000 locked && echo "path $PWD"
"""


def archive_of(job_sh: str, run_id: str = "r-stray") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        data = job_sh.encode()
        info = tarfile.TarInfo(f"{run_id}/job.sh")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def alive(pid: int) -> bool:
    """Running, or a zombie nobody reaped (which counts as left behind too)."""
    return Path(f"/proc/{pid}").exists()


async def run_through_modal(job_sh: str, time_limit_s: float) -> dict[str, Any]:
    client = LocalModalClient()
    call_id = await client.spawn("run_l4", archive_of(job_sh), time_limit_s)
    deadline = time.monotonic() + 60
    while (outcome := await client.poll(call_id)) is None:
        assert time.monotonic() < deadline, "the Modal call did not finish"
        await asyncio.sleep(0.05)
    await client.close()
    assert outcome.value is not None, outcome.error
    return outcome.value


@pytest.mark.parametrize(
    ("ending", "time_limit_s", "exit_code", "timed_out"),
    [("exit 0", 30.0, 0, False), ("exit 3", 30.0, 3, False), ("sleep 60", 1.0, 124, True)],
    ids=["passed", "failed", "timed-out"],
)
async def test_a_job_s_stray_processes_and_files_are_gone_when_the_modal_function_returns(
    ending: str, time_limit_s: float, exit_code: int, timed_out: bool
) -> None:
    started = time.monotonic()
    value = await run_through_modal(STRAY_JOB + ending + "\n", time_limit_s)
    assert (value["exit_code"], value["timed_out"]) == (exit_code, timed_out)
    assert time.monotonic() - started < 20  # the strays did not hold the call until they ended
    lines = [line.split(" ", 1) for line in value["output"].splitlines()]
    pids = [int(rest) for kind, rest in lines if kind == "pid"]
    paths = [rest for kind, rest in lines if kind == "path"]
    assert len(pids) == 4 and len(paths) == 2, value["output"]
    assert [pid for pid in pids if alive(pid)] == []
    assert [path for path in paths if os.path.exists(path)] == []
    bundle = Path(paths[1])
    assert not bundle.parent.parent.exists()  # the call's whole temporary folder went


def test_every_modal_gpu_function_serves_one_run_per_container(monkeypatch: pytest.MonkeyPatch) -> None:
    """What modal_app.py gives app.function, recorded by loading the file afresh with app.function
    wrapped (Modal still checks the options): every GPU function asks for a container per input."""
    given: list[dict[str, Any]] = []
    real = modal.App.function

    @functools.wraps(real)
    def function(self: modal.App, **options: Any) -> Any:
        given.append(options)
        return real(self, **options)

    monkeypatch.setattr(modal.App, "function", function)
    spec = importlib.util.spec_from_file_location("modal_app_probe", modal_app.__file__)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert sorted(o["name"] for o in given) == sorted(name for _, name in modal_app.GPUS.values())
    for options in given:
        assert options.get("single_use_containers") is True or options.get("max_inputs") == 1, options
        assert options["retries"] == 0
    # the name used is one this Modal client takes, and the options the loaded app uses are the same
    assert set(modal_app.ONE_RUN_PER_CONTAINER) <= set(inspect.signature(real).parameters)
    assert given == list(modal_app.OPTIONS.values())
