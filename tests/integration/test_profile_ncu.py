"""Profile mode end to end on the dev stack with Nsight Compute: a copy of site alpha with `profile: {ncu:
true}` whose jobs find a fake `ncu` on their PATH (its setup line; there is no GPU or Nsight Compute here:
the fake is the one seam). The report goes from the job's bundle over SSH to the worker, is checked against
the signed result, stored in PostgreSQL and downloaded from the API as whoever may read the run; the CLI
saves a local run's report next to the submitted file."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.service.facade import OPERATOR
from tests.conftest import PROBLEMS, solution
from tests.integration.api_harness import api_server
from tests.integration.site_files import dev_site_text, write_site
from tests.unit.test_harness_ncu import FAKE_NCU

pytestmark = pytest.mark.integration

RUN_S = 120


@pytest.fixture
def ncu_sites(dev_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    """A sites folder with site `prof`: alpha with Nsight Compute on, and a fake ncu its jobs' account can
    run (in a folder of its own that account can read: a test's tmp_path is the tester's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="fake-nsight-"))
    try:
        folder.chmod(0o755)
        tool = folder / "ncu"
        tool.write_text(FAKE_NCU)
        tool.chmod(0o755)
        text = dev_site_text("alpha", Path(dev_env["GATEWAY_DEV_DIR"])).replace(
            "name: alpha", "name: prof", 1
        )
        text = text.replace("setup:\n", f'setup:\n  - export PATH="{folder}:$PATH"\n', 1)
        write_site(tmp_path / "sites", "prof", text + "profile:\n  ncu: true\n")
        yield tmp_path / "sites"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def finished_run(
    client: httpx.AsyncClient, run_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_S
    while time.monotonic() < deadline:
        run: dict[str, Any] = (await client.get(f"/api/runs/{run_id}", headers=headers)).json()
        if run.get("finished"):
            return run
        await asyncio.sleep(1)
    raise AssertionError(f"run {run_id} did not finish in {RUN_S} s")


async def test_the_ncu_report_travels_from_the_node_to_a_download(
    stack_settings: Settings, ncu_sites: Path
) -> None:
    settings = stack_settings.model_copy(update={"sites_dir": ncu_sites})
    async with api_server(settings) as api:
        board = await api.board(("H100",))
        hidden = await api.board(("H100",), visibility="hidden")
        token = await api.user_token("alice")
        await api.gateway.accounts.set_admin("root", True, caller=OPERATOR)  # submits to the hidden board
        admin = {"Authorization": f"Bearer {await api.user_token('root')}"}
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            runs = {}
            for name, auth in ((board, {"Authorization": f"Bearer {token}"}), (hidden, admin)):
                answer = await client.post(
                    "/api/submissions",
                    headers=auth,
                    files={"file": ("k.py", solution("vectoradd", "correct.py"))},
                    data={"leaderboard": name, "gpu_type": "H100", "mode": "profile"},
                )
                assert answer.status_code == 202, answer.text
                runs[name] = answer.json()["public_run_id"]
            run = await finished_run(client, runs[board])
            assert run["passed"] is True and run["site"] == "prof", run
            assert len(run["profile"]) == 2 and "aten::add" in run["profile"][0]["report"]
            ncu = run["ncu_report"]
            assert ncu["url"] == f"/api/runs/{run['run_id']}/profile.ncu-rep" and ncu["error"] is None, ncu

            download = await client.get(ncu["url"])  # anonymous: as anyone may read the run
            assert download.status_code == 200, download.text
            assert download.headers["content-type"] == "application/octet-stream"
            assert download.headers["content-disposition"] == (
                f'attachment; filename="profile-{run["run_id"][:8]}.ncu-rep"'
            )
            assert (
                download.content.startswith(b"fake ncu profiled: ")
                and b"harness.usercode" in download.content
            )
            assert len(download.content) == ncu["size"]

            # a hidden board's run: its report only to an admin, as the run itself
            await finished_run(client, runs[hidden], admin)
            path = f"/api/runs/{runs[hidden]}/profile.ncu-rep"
            assert (await client.get(path)).status_code == 404
            assert (await client.get(path, headers=admin)).status_code == 200

            missing = await client.get(f"/api/runs/{runs[board][:-4]}ffff/profile.ncu-rep")
            assert missing.status_code == 404 and "error" in missing.json()


def test_the_cli_prints_the_tables_and_saves_the_report_next_to_the_file(
    dev_env: dict[str, str], ncu_sites: Path, tmp_path: Path
) -> None:
    source = tmp_path / "mine.py"
    source.write_text(solution("vectoradd", "correct.py"))
    env = dict(os.environ, GATEWAY_SITES_DIR=str(ncu_sites), GATEWAY_DEV_DIR=dev_env["GATEWAY_DEV_DIR"])
    env.pop("GATEWAY_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "submit", str(source),
         "--task", str(PROBLEMS / "vectoradd"), "--mode", "profile", "--site", "prof", "--no-db"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=RUN_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("(torch.profiler, in the submission's process)") == 2, done.stdout
    assert "aten::add" in done.stdout and "profiled: the tables are above" in done.stdout
    [saved] = list(tmp_path.glob("mine.py.*.ncu-rep"))
    assert saved.read_bytes().startswith(b"fake ncu profiled: ")
    assert f"saved to {saved}\n" in done.stdout, done.stdout
