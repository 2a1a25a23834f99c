"""Nothing of a run stays on its site after its end: the backends' remove (local for real, Slurm at the
command seam and its shell scripts run for real), keep_bundles, and where a run's end removes its bundle."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.sites import SiteConfig
from gateway.core.errors import BackendError, CommandError
from gateway.core.states import JobState
from gateway.running.backends.local import LocalBackend
from gateway.running.backends.slurm import KEEP_LOGS_SCRIPT, LIST_SCRIPT, SlurmBackend
from gateway.running.backends.slurm_output import parse_bundle_list
from gateway.running.bundle import BundlePaths, bundle_files, stage_bundle
from gateway.running.jobscript import TemplateRenderer
from tests.unit.fakes import FakeTransport, gamma_site, tiny_task
from tests.unit.test_service import SITE as SCRIPTED_SITE
from tests.unit.test_service import ScriptedBackend, gateway_with, request_to, signed

TASK = tiny_task(files={"submission.py": "@SUBMISSION@", "reference.py": "x = 1\n"})
SECRET_CODE = "def custom_kernel(x): return x  # secret\n"
LOGS = ["output.log", "result.json"]


def staged(workdir: Path, run_id: str | None = None) -> tuple[str, Path]:
    """A complete bundle (code, key, spec, harness, job.sh, output.log) plus a result.json, as a run
    leaves it: (its run id, its folder)."""
    run_id = run_id or str(uuid.uuid4())
    root = workdir / run_id
    stage_bundle(root, bundle_files(TASK, SECRET_CODE, {"seed": 4242}, "aa" * 32, "#!/bin/sh\n"))
    (root / "result.json").write_text("{}")
    return run_id, root


def local(workdir: Path) -> LocalBackend:
    return LocalBackend(workdir, TemplateRenderer(REPO_ROOT / "templates"))


async def test_local_remove_takes_the_whole_bundle_of_every_run_named(tmp_path: Path) -> None:
    (one, root1), (two, root2), (other, root3) = (staged(tmp_path) for _ in range(3))
    await local(tmp_path).remove([one, two, str(uuid.uuid4())])  # a bundle that is not there: no error
    assert not root1.exists() and not root2.exists()
    assert (root3 / "key").exists()  # another run's bundle is left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == [other]


async def test_local_remove_keeping_logs_leaves_only_output_and_result(tmp_path: Path) -> None:
    run_id, root = staged(tmp_path)
    (root / "task" / "scratch.bin").write_bytes(b"x")  # whatever the job wrote there goes too
    (root / "stray").write_text("x")
    await local(tmp_path).remove([run_id], keep="logs")
    assert sorted(p.name for p in root.iterdir()) == LOGS
    await local(tmp_path).remove([run_id], keep="logs")  # again: nothing more to do, no error
    assert sorted(p.name for p in root.iterdir()) == LOGS


async def test_a_run_id_that_is_not_one_path_component_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    for bad in ("../victim", "..", "-rf", "a/b", "", "victim\n"):
        with pytest.raises(ValueError, match="not a run id"):
            await local(work).remove([bad])
        with pytest.raises(ValueError, match="not a run id"):
            BundlePaths.under("/w", bad)
    assert victim.exists()


async def test_local_bundles_lists_run_folders_only(tmp_path: Path) -> None:
    run_id, _ = staged(tmp_path)
    (tmp_path / "notes").mkdir()  # not named as a run: a sweep never sees it
    (tmp_path / str(uuid.uuid4())).write_text("a file, not a bundle")
    found = await local(tmp_path).bundles()
    assert list(found) == [run_id] and found[run_id] > 0
    assert await local(tmp_path / "missing").bundles() == {}


async def test_local_remove_that_fails_is_a_backend_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, _ = staged(tmp_path)

    def refuse(path: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("gateway.running.backends.local.shutil.rmtree", refuse)
    with pytest.raises(BackendError, match="cannot remove"):
        await local(tmp_path).remove([run_id])


# -- Slurm: one command, paths from BundlePaths only --------------------------------------------------


def slurm(transport: FakeTransport, site: SiteConfig | None = None) -> SlurmBackend:
    return SlurmBackend(site or gamma_site(), transport, TemplateRenderer(REPO_ROOT / "templates"))


async def test_slurm_remove_is_one_rm_for_every_bundle() -> None:
    transport = FakeTransport(lambda argv, stdin: (0, "", ""))
    runs = [str(uuid.uuid4()) for _ in range(3)]
    await slurm(transport).remove(runs)
    assert transport.calls == [["rm", "-rf", "--", *(f"/home/gwrun/runs/{r}" for r in runs)]]
    transport.calls.clear()
    await slurm(transport).remove(runs, keep="logs")
    assert transport.calls == [
        ["sh", "-c", KEEP_LOGS_SCRIPT, "gw-remove", *(f"/home/gwrun/runs/{r}" for r in runs)]
    ]
    with pytest.raises(ValueError, match="not a run id"):
        await slurm(transport).remove(["x; rm -rf ~"])


async def test_slurm_remove_failing_raises_for_its_caller_to_log() -> None:
    transport = FakeTransport(lambda argv, stdin: (1, "", "rm: cannot remove: Permission denied"))
    with pytest.raises(CommandError):
        await slurm(transport).remove([str(uuid.uuid4())])


def test_the_keep_logs_script_run_for_real_leaves_only_the_logs(tmp_path: Path) -> None:
    (_, root1), (_, root2) = staged(tmp_path / "a b$(touch pwned)"), staged(tmp_path / "w")
    (root1 / "-rf").write_text("a file named like an option")
    done = subprocess.run(
        ["sh", "-c", KEEP_LOGS_SCRIPT, "gw-remove", str(root1), str(root2), str(tmp_path / "gone")],
        capture_output=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in root1.iterdir()) == LOGS
    assert sorted(p.name for p in root2.iterdir()) == LOGS
    assert not (tmp_path / "pwned").exists()


def test_the_list_script_run_for_real_names_run_folders_with_their_age(tmp_path: Path) -> None:
    run_id, _ = staged(tmp_path)
    (tmp_path / "notes").mkdir()
    done = subprocess.run(
        ["sh", "-c", LIST_SCRIPT, "gw-list", str(tmp_path)], capture_output=True, text=True, check=True
    )
    found = parse_bundle_list(done.stdout)
    assert list(found) == [run_id] and found[run_id] > 0
    missing = subprocess.run(
        ["sh", "-c", LIST_SCRIPT, "gw-list", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 0 and missing.stdout == ""


# -- keep_bundles -------------------------------------------------------------------------------------


def test_keep_bundles_defaults_to_none_and_refuses_anything_but_none_or_logs() -> None:
    assert gamma_site().keep_bundles == "none"
    fields = gamma_site().model_dump()
    assert SiteConfig(**(fields | {"keep_bundles": "logs"})).keep_bundles == "logs"
    for bad in ("keys", "all", True, "LOGS"):
        with pytest.raises(ValidationError, match=r"keep_bundles must be one of none, logs.*never kept"):
            SiteConfig(**(fields | {"keep_bundles": bad}))


def test_the_local_site_follows_its_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings(local_workdir=tmp_path).local_keep_bundles == "none"
    monkeypatch.setenv("GATEWAY_LOCAL_KEEP_BUNDLES", "logs")
    assert Settings(local_workdir=tmp_path).local_keep_bundles == "logs"
    monkeypatch.setenv("GATEWAY_LOCAL_KEEP_BUNDLES", "keys")
    with pytest.raises(ValidationError, match="keep_bundles must be one of"):
        Settings(local_workdir=tmp_path)


# -- where a run's end removes its bundle (the scripted backend fails any read after removal) --------


async def test_a_finished_run_removes_its_bundle_after_its_result_was_read(tmp_path: Path) -> None:
    backend = ScriptedBackend(lambda r: (JobState.COMPLETED, signed(r)))
    gateway = await gateway_with(backend, tmp_path)
    report = await asyncio.wait_for(gateway.submit(request_to()), 5)
    await gateway.close()
    assert report.passed
    assert backend.removed == [(report.run_id, "none")]


async def test_a_pushed_result_a_failed_job_and_a_requeued_run_each_remove_once_at_the_end(
    tmp_path: Path,
) -> None:
    pushed = ScriptedBackend(lambda r: (JobState.RUNNING, signed(r)))
    pushed.lines = ["[harness] result written"]
    failed = ScriptedBackend(lambda r: (JobState.FAILED, None))
    requeued = ScriptedBackend(
        lambda r: (JobState.NODE_FAIL, None) if r.attempt == 1 else (JobState.COMPLETED, signed(r))
    )
    for backend in (pushed, failed, requeued):
        gateway = await gateway_with(backend, tmp_path)
        report = await asyncio.wait_for(gateway.submit(request_to()), 5)
        await gateway.close()
        # the requeued attempt reused the folder: it is removed once, when the run ended
        assert backend.removed == [(report.run_id, "none")], report


async def test_a_site_keeping_logs_is_asked_to_keep_logs(tmp_path: Path) -> None:
    site = SCRIPTED_SITE.model_copy(update={"keep_bundles": "logs"})
    backend = ScriptedBackend(lambda r: (JobState.COMPLETED, signed(r)))
    gateway = await gateway_with(backend, tmp_path, site)
    report = await asyncio.wait_for(gateway.submit(request_to()), 5)
    await gateway.close()
    assert backend.removed == [(report.run_id, "logs")]


async def test_a_refused_sbatch_removes_what_was_unpacked(tmp_path: Path) -> None:
    class Refusing(ScriptedBackend):
        async def submit(self, requests: object) -> list[object]:  # type: ignore[override]
            raise BackendError("site gamma: sbatch refused run x: invalid account")

    backend = Refusing(lambda r: (JobState.COMPLETED, None))
    gateway = await gateway_with(backend, tmp_path)
    report = await asyncio.wait_for(gateway.submit(request_to()), 5)
    await gateway.close()
    assert report.state is JobState.FAILED and "invalid account" in (report.error or "")
    assert backend.removed == [(report.run_id, "none")]


async def test_a_cancelled_run_is_cancelled_then_removed(tmp_path: Path) -> None:
    backend = ScriptedBackend(lambda r: (JobState.RUNNING, None))
    gateway = await gateway_with(backend, tmp_path)
    waiting = asyncio.create_task(gateway.submit(request_to()))
    await asyncio.sleep(0.5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await gateway.close()
    assert backend.cancelled == ["100"]
    assert [keep for _, keep in backend.removed] == ["none"]


async def test_a_removal_that_fails_is_logged_and_the_run_stands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Stuck(ScriptedBackend):
        async def remove(self, run_ids: object, keep: object = "none") -> None:
            raise CommandError(["rm"], 1, "", "Permission denied")

    gateway = await gateway_with(Stuck(lambda r: (JobState.COMPLETED, signed(r))), tmp_path)
    with caplog.at_level(logging.WARNING):
        report = await asyncio.wait_for(gateway.submit(request_to()), 5)
    await gateway.close()
    assert report.passed
    assert "could not remove its bundle" in caplog.text
