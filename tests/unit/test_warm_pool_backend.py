"""The warm pools' backend: a pool job's script, a run handed to a pool in one command, a pool run's state
from its pool's folders and the pool job's state, cancel without a race, and hostile names refused.

The shell scripts run for real (sh, tar, mv on a temporary work folder); only the Slurm commands are
answered by a stand-in."""

from __future__ import annotations

import json
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.core.commands import CompletedCommand
from gateway.core.states import JobState
from gateway.running.backends.base import JobHandle, JobRequest, PoolSlot
from gateway.running.backends.slurm import SlurmBackend
from gateway.running.backends.warm_pool import PoolPaths, WarmPoolBackend, new_pool_id
from gateway.running.bundle import BundlePaths
from gateway.running.jobscript import TemplateRenderer
from gateway.running.transport.local import LocalTransport
from tests.unit.fakes import gamma_site, tiny_task

SITE = gamma_site(warm_pool={"max_jobs": 2, "idle_s": 30, "max_lifetime": "00:20:00"}, time_limit="00:05:00")
TASK = tiny_task(files={"submission.py": "@SUBMISSION@"})
RUN = "00000000-0000-4000-8000-0000000000aa"
SLURM = ("sbatch", "squeue", "sacct", "scancel")


class HalfLocal(LocalTransport):
    """sh, tar, mv, rm for real in a temporary folder; Slurm's commands answered from ``slurm``."""

    def __init__(self, home: Path, slurm: dict[str, str]) -> None:
        super().__init__()
        self.home = home
        self.slurm = slurm
        self.slurm_calls: list[list[str]] = []
        self.calls: list[list[str]] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | bytes | None = None,
        timeout: float | None = 30.0,
        check: bool = True,
    ) -> CompletedCommand:
        self.calls.append(list(argv))
        command = Path(argv[2] if argv[0] == "env" else argv[0]).name
        if command in SLURM:
            self.slurm_calls.append(list(argv))
            return CompletedCommand(tuple(argv), 0, self.slurm.get(command, ""), "")
        return await super().run(argv, stdin=stdin, timeout=timeout, check=check)

    async def home_dir(self) -> str:
        return str(self.home)


def pooled(tmp_path: Path, **slurm: str) -> tuple[WarmPoolBackend, HalfLocal]:
    """The backend of a site whose sbatch and scancel (run inside its scripts) are stand-ins that log
    their arguments to ``<tmp>/slurm.log``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("sbatch", "scancel"):
        answer = slurm.get(name, "")
        (bin_dir / name).write_text(f'#!/bin/sh\necho {name} "$@" >> {tmp_path}/slurm.log\necho {answer}\n')
        (bin_dir / name).chmod(0o755)
    site = SITE.model_copy(update={"slurm": SITE.slurm.model_copy(update={"bin_dir": str(bin_dir)})})
    transport = HalfLocal(tmp_path, slurm)
    return WarmPoolBackend(
        SlurmBackend(site, transport, TemplateRenderer(REPO_ROOT / "templates"))
    ), transport


def slurm_log(tmp_path: Path) -> list[str]:
    log = tmp_path / "slurm.log"
    return log.read_text().splitlines() if log.exists() else []


def request(run_id: str = RUN, pool: PoolSlot | None = None, **changes: object) -> JobRequest:
    return JobRequest(
        run_id,
        SITE,
        SITE.partitions[0],
        TASK,
        "def custom_kernel(x): return x\n",
        {"run_id": run_id},
        "ab" * 32,
        pool=pool,
        **changes,  # type: ignore[arg-type]
    )


async def test_a_pool_job_holds_one_runs_resources_for_its_lifetime_and_runs_the_pool_runner(
    tmp_path: Path,
) -> None:
    backend, _ = pooled(tmp_path, sbatch="91")
    pool_id = new_pool_id()
    assert await backend.start_pool(pool_id, SITE.partitions[0], 1) == "91"
    root = tmp_path / "runs" / pool_id
    script = (root / "job.sh").read_text()
    assert f"#SBATCH --job-name=gw-{pool_id}" in script
    assert "#SBATCH --time=00:20:00" in script  # its lifetime
    assert "#SBATCH --gres=gpu:h100:1" in script
    assert f"harness/__main__.py pool {root}" in script
    assert json.loads((root / "pool.json").read_text()) == {
        "pool_id": pool_id,
        "idle_s": 30.0,
        "max_lifetime_s": 900,
    }
    assert {p.name for p in root.iterdir()} >= {
        "harness",
        "inbox",
        "taken",
        "done",
        "output.log",
        "pool.json",
    }
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert slurm_log(tmp_path) == [f"sbatch --parsable {root}/job.sh"]


async def test_a_run_is_handed_to_a_pool_in_one_command_and_its_state_follows_the_pool(
    tmp_path: Path,
) -> None:
    backend, _ = pooled(tmp_path, squeue="91|RUNNING|None|0\n")
    pool_id = new_pool_id()
    pool = PoolPaths.under(str(tmp_path / "runs"), pool_id)
    for folder in ("inbox", "taken", "done"):
        Path(pool.root, folder).mkdir(parents=True)
    slot = PoolSlot(pool_id, "91")
    [handle] = await backend.submit([request(pool=slot)])
    assert handle.job_id == f"91:{pool_id}" and slurm_log(tmp_path) == []  # no sbatch
    bundle = tmp_path / "runs" / RUN
    assert (bundle / "key").read_text().strip() == "ab" * 32
    assert stat.S_IMODE((bundle / "key").stat().st_mode) == 0o600
    assert sorted(p.name for p in Path(pool.root, "inbox").iterdir()) == [RUN]  # no half-made entry left

    assert (await backend.status([handle]))[handle.job_id].state is JobState.PENDING
    Path(pool.root, "inbox", RUN).rename(Path(pool.root, "taken", RUN))
    assert (await backend.status([handle]))[handle.job_id].state is JobState.RUNNING
    Path(pool.root, "done", RUN).write_text(
        json.dumps({"run_id": RUN, "started": 10.0, "ended": 10.25, "exit_code": 0})
    )
    assert (await backend.status([handle]))[handle.job_id].state is JobState.COMPLETED
    times = await backend.run_times(handle)
    assert times is not None and times.seconds == pytest.approx(0.25)


async def test_a_run_whose_pool_ended_under_it_is_a_node_failure(tmp_path: Path) -> None:
    backend, _ = pooled(tmp_path, squeue="", sacct="91|CANCELLED by 0|0:15\n")
    pool_id = new_pool_id()
    Path(tmp_path, "runs", pool_id, "taken").mkdir(parents=True)
    Path(tmp_path, "runs", pool_id, "taken", RUN).touch()
    handle = JobHandle(RUN, f"91:{pool_id}", BundlePaths.under(str(tmp_path / "runs"), RUN))
    status = (await backend.status([handle]))[handle.job_id]
    assert status.state is JobState.NODE_FAIL and "warm pool (job 91) ended" in (status.reason or "")


async def test_cancel_takes_a_waiting_run_back_or_cancels_the_pool_running_it(tmp_path: Path) -> None:
    backend, _ = pooled(tmp_path)
    pool_id = new_pool_id()
    inbox = Path(tmp_path, "runs", pool_id, "inbox")
    inbox.mkdir(parents=True)
    (inbox / RUN).touch()
    handle = JobHandle(RUN, f"91:{pool_id}", BundlePaths.under(str(tmp_path / "runs"), RUN))
    await backend.cancel([handle])
    assert not (inbox / RUN).exists() and slurm_log(tmp_path) == []  # taken back: the pool never sees it
    await backend.cancel([handle])  # now it is not in the inbox: the pool may be running it
    assert slurm_log(tmp_path) == ["scancel 91"]


async def test_a_takeover_finds_its_run_in_the_pool_and_hands_nothing_twice(tmp_path: Path) -> None:
    backend, _ = pooled(tmp_path, squeue="91|RUNNING|None|0\n")
    pool_id = new_pool_id()
    taken = Path(tmp_path, "runs", pool_id, "taken")
    taken.mkdir(parents=True)
    (taken / RUN).touch()
    [handle] = await backend.submit([request(pool=PoolSlot(pool_id, "91"), maybe_submitted=True)])
    assert handle.job_id == f"91:{pool_id}"
    assert not (tmp_path / "runs" / RUN).exists()  # not unpacked again: the pool has it


@pytest.mark.parametrize("hostile", ["../p-000000000000", "p-0000000000001", "p-00000000000g", "p-$(id)"])
def test_only_pool_ids_the_gateway_makes_name_a_folder(hostile: str) -> None:
    with pytest.raises(ValueError):
        PoolPaths.under("/w", hostile)
    assert PoolSlot.of_handle_id(f"91:{hostile}") is None
    assert PoolSlot.of_handle_id("91;rm:p-000000000000") is None


async def test_jobs_of_their_own_are_asked_about_as_on_any_slurm_site_and_nothing_more(
    tmp_path: Path,
) -> None:
    backend, transport = pooled(tmp_path, squeue="77|RUNNING|None|0\n")
    handle = JobHandle(RUN, "77", BundlePaths.under(str(tmp_path / "runs"), RUN))
    assert (await backend.status([handle]))["77"].state is JobState.RUNNING
    assert [Path(call[2]).name for call in transport.calls] == ["squeue"]  # env SLURM_TIME_FORMAT=%s squeue
