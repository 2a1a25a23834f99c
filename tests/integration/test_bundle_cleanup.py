"""Nothing worth stealing on a site's disk (issue 17): on the dev stack, a run's bundle (code, key, spec
with a secret rerun's seed) leaves cluster alpha once the run's end is recorded (finished, cancelled, its
sbatch refused, taken over from a worker that died), the database drops the run's key in the same
statement, a site may keep logs and nothing else, and `gateway sites clean` sweeps leftovers of finished or
unknown runs but never a folder of a run still queued or running.

Each test writes alpha's YAML with a work folder of its own under gwrun's home, so what it lists is its own.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.config.settings import Settings
from gateway.config.sites import KeepBundles
from gateway.config.tasks import load_task
from gateway.core.states import JobState
from gateway.running.backends.slurm import SlurmBackend
from gateway.service.facade import OPERATOR, Gateway, as_mode
from gateway.service.model import SubmitRequest
from gateway.store import NewRun, Store
from tests.conftest import PROBLEMS, solution
from tests.integration.site_files import dev_site_text, write_site

pytestmark = pytest.mark.integration
SLEEPER = solution("vectoradd", "correct.py") + "\nimport time\n\ntime.sleep(120)\n"  # a job that stays


class Alpha:
    """Cluster alpha with a work folder of this test's own; its path as seen from here (gwrun's home)."""

    def __init__(self, gateway: Gateway, workdir: Path) -> None:
        self.gateway = gateway
        self.workdir = workdir

    @property
    def store(self) -> Store:
        assert self.gateway.store is not None
        return self.gateway.store

    def folders(self) -> dict[str, list[str]]:
        """Every run folder in the work folder, with every file in it (relative paths)."""
        if not self.workdir.exists():
            return {}
        return {
            folder.name: sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
            for folder in self.workdir.iterdir()
        }

    async def ssh(self, script: str, *args: str) -> None:
        """A command on alpha as gwrun, over the site's own transport (so what it makes is gwrun's)."""
        backend = self.gateway.sites.backend_for("alpha")
        assert isinstance(backend, SlurmBackend)
        await backend.transport.run(["sh", "-c", script, "gw-test", *args])


def request(board: str, mode: str = "test", code: str | None = None) -> SubmitRequest:
    return SubmitRequest(
        code=code or solution("vectoradd", "correct.py"),
        file_name="k.py",
        user="cleanup",
        task=load_task(PROBLEMS / "vectoradd"),
        leaderboard=board,
        site="alpha",
        gpu_type="H100",
        mode=as_mode(mode),
        admin=True,
    )


MakeAlpha = Callable[..., Awaitable[Alpha]]


def board() -> str:
    return f"clean-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make_alpha(
    dev_env: dict[str, str], stack_settings: Settings, tmp_path: Path
) -> AsyncIterator[MakeAlpha]:
    dev_dir = Path(dev_env["GATEWAY_DEV_DIR"])
    made: list[tuple[Gateway, Path]] = []

    async def make(keep: KeepBundles = "none", edit: Callable[[str], str] = lambda text: text) -> Alpha:
        relative = f"alpha-runs/it-clean-{uuid.uuid4().hex[:8]}"
        text = dev_site_text("alpha", dev_dir).replace("workdir: alpha-runs", f"workdir: {relative}")
        assert relative in text
        text = edit(text) + f"keep_bundles: {keep}\n"
        sites = tmp_path / f"sites-{len(made)}"
        write_site(sites, "alpha", text)
        gateway = await Gateway.open(stack_settings.model_copy(update={"sites_dir": sites}))
        made.append((gateway, dev_dir / "home" / relative))
        return Alpha(gateway, dev_dir / "home" / relative)

    yield make
    for gateway, workdir in made:
        await gateway.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_a_finished_run_and_its_secret_rerun_leave_nothing_on_the_site_and_no_key_in_the_database(
    make_alpha: MakeAlpha,
) -> None:
    alpha = await make_alpha()
    report = await alpha.gateway.submit(request(board(), mode="leaderboard"))
    assert report.passed, report.error
    record = await alpha.store.get_run(report.run_id)
    assert record is not None
    runs = await alpha.gateway.submission_runs(record.submission_id, caller=OPERATOR)
    assert len(runs) == 2 and any(r.secret for r in runs) and all(r.finished_at for r in runs)
    assert alpha.workdir.is_dir()  # the runs were there
    assert alpha.folders() == {}  # no key, no code, no spec.json (the rerun's seed): nothing
    assert await alpha.store.keys_held([r.run_id for r in runs]) == set()


async def test_a_site_keeping_logs_keeps_output_and_result_only(make_alpha: MakeAlpha) -> None:
    alpha = await make_alpha("logs")
    report = await alpha.gateway.submit(request(board()))
    assert report.passed, report.error
    assert alpha.folders() == {report.run_id: ["output.log", "result.json"]}
    assert "[harness]" in (alpha.workdir / report.run_id / "output.log").read_text()
    assert await alpha.store.keys_held([report.run_id]) == set()


async def test_a_cancelled_run_is_removed_from_the_site(make_alpha: MakeAlpha) -> None:
    alpha = await make_alpha()
    submission = await alpha.gateway.enqueue(request(board(), code=SLEEPER))
    [run_id] = submission.run_ids
    draining = asyncio.create_task(alpha.gateway.worker().drain([run_id]))
    try:
        deadline = time.monotonic() + 60
        while (record := await alpha.store.get_run(run_id)) is None or record.state != "RUNNING":
            assert time.monotonic() < deadline, "the job never ran"
            await asyncio.sleep(0.2)
        assert "task/submission.py" in alpha.folders()[run_id]  # the code is there while it runs
        assert await alpha.store.keys_held([run_id]) == {run_id}  # and the database holds its key
        assert "cancel requested" in await alpha.gateway.cancel_run(run_id, caller=OPERATOR)
        reports = await asyncio.wait_for(draining, 60)
    finally:
        draining.cancel()
    assert reports[run_id].state is JobState.CANCELLED
    assert alpha.folders() == {}
    assert await alpha.store.keys_held([run_id]) == set()


async def test_a_run_whose_sbatch_was_refused_leaves_nothing(make_alpha: MakeAlpha) -> None:
    def unknown_feature(text: str) -> str:  # a constraint no node has: sbatch refuses the job
        return text.replace(
            "mem_per_gpu: 1G\n", "mem_per_gpu: 1G\n    directives: [--constraint=no-such-gpu]\n"
        )

    alpha = await make_alpha(edit=unknown_feature)
    report = await alpha.gateway.submit(request(board()))
    assert report.state is JobState.FAILED and "sbatch refused" in (report.error or ""), report.error
    assert alpha.workdir.is_dir()  # the bundle was unpacked before sbatch refused it
    assert alpha.folders() == {}
    assert await alpha.store.keys_held([report.run_id]) == set()


async def test_a_run_taken_over_from_a_dead_worker_is_removed_by_its_new_owner(
    make_alpha: MakeAlpha,
) -> None:
    alpha = await make_alpha()
    submission = await alpha.gateway.enqueue(request(board(), mode="benchmark"))
    [run_id] = submission.run_ids
    dying = alpha.gateway.worker(name=f"it-dies-{uuid.uuid4().hex[:6]}")
    draining = asyncio.create_task(dying.drain([run_id]))
    deadline = time.monotonic() + 60
    while (record := await alpha.store.get_run(run_id)) is None or record.job_id is None:
        assert time.monotonic() < deadline, "the job was never submitted"
        await asyncio.sleep(0.1)
    # the worker dies: it stops following without touching the job, its bundle or its row (as when its
    # claim was lost), and sends no more heartbeats
    dying._stop([run_id], lost=True)
    draining.cancel()
    await asyncio.gather(draining, return_exceptions=True)
    assert run_id in alpha.folders()  # left behind, with what the next owner needs (result.json)
    reports = await asyncio.wait_for(alpha.gateway.worker().drain([run_id]), 90)  # after the claim is stale
    assert reports[run_id].passed, reports[run_id].error
    record = await alpha.store.get_run(run_id)
    assert record is not None and record.claims >= 2
    assert alpha.folders() == {}
    assert await alpha.store.keys_held([run_id]) == set()


async def test_the_sweep_removes_old_leftovers_of_finished_or_unknown_runs_only(
    make_alpha: MakeAlpha,
) -> None:
    alpha = await make_alpha()
    store = alpha.store
    task = load_task(PROBLEMS / "vectoradd")
    leaderboard = await alpha.gateway.boards.create_leaderboard(board(), task, caller=OPERATOR)
    finished, unfinished = str(uuid.uuid4()), str(uuid.uuid4())
    runs = [NewRun(r, "test", "H100", "00" * 32) for r in (finished, unfinished)]
    await store.create_submission("cleanup", leaderboard.id, task.name, "k.py", "x = 1\n", "test", runs)
    assert await store.request_cancel(finished) == "queued"
    # held by a live worker of this test (fresh heartbeat): queued or running as far as anyone knows
    assert [r.run_id for r in await store.claim("it-sweep-holder", 1, 3600.0, [unfinished])] == [unfinished]
    unknown, recent = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        make = 'mkdir -p -- "$1" && echo k > "$1/key" && echo c > "$1/submission.py"'
        for run_id in (finished, unfinished, unknown, recent):
            await alpha.ssh(make, str(alpha.workdir / run_id))
        await alpha.ssh('mkdir -p -- "$1/not-a-run"', str(alpha.workdir))
        for name in (finished, unfinished, unknown, "not-a-run"):
            await alpha.ssh('touch -d "2 days ago" -- "$1"', str(alpha.workdir / name))
        sweep = await alpha.gateway.processor.clean_site("alpha", 24 * 3600 - 60, caller=OPERATOR)
        assert sorted(sweep.removed) == sorted([finished, unknown])
        assert (sweep.unfinished, sweep.recent) == (1, 1)
        assert sorted(alpha.folders()) == sorted([unfinished, recent, "not-a-run"])
    finally:
        await store.request_cancel(unfinished)  # leave nothing queued
