"""The wheel as a researcher gets it from `pip install .`: built from a copy of the checkout, installed into a
fresh venv in a temp folder, and run from a folder outside the checkout with no PYTHONPATH. It must carry
its templates, migrations, example sites and problems, and never read the checkout.

Nothing is downloaded: the fresh venv gets its dependencies (asyncssh, pydantic, torch, ...) as hard links
to this test runner's own site-packages, less the dev install's editable hook for the gateway, and the
gateway from the wheel alone. Real files in the venv's own site-packages, as pip would leave them: the
local site's sandbox binds the interpreter's site-packages and nothing else.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.store.admin import scratch_database
from gateway.store.migrate import applied_migrations

VECTORADD = REPO_ROOT / "problems" / "vectoradd"
CORRECT = VECTORADD / "solutions" / "correct.py"
# what a copy of the checkout leaves out: the venv, the dev stack, VCS and build leftovers
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".dev", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "node_modules"
)


OFFLINE = ("--no-deps", "--no-index")


def _clean_env() -> dict[str, str]:
    """This environment less the gateway's settings and any PYTHONPATH (a checkout on it would be read, and
    its kernel_gateway.egg-info would tell pip the gateway is installed already)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PYTHON", "VIRTUAL_ENV"))}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    home: Path  # an empty folder outside the checkout: the cwd, HOME and XDG_CONFIG_HOME of every command

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self, **extra: str) -> dict[str, str]:
        env = _clean_env() | {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config")}
        env["GATEWAY_LOCAL_WORKDIR"] = str(self.home / "runs")
        return env | extra

    def gateway(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "gateway"), *args],
            capture_output=True,
            text=True,
            cwd=self.home,
            env=self.env(**extra_env),
            timeout=180,
        )

    def python_says(self, code: str) -> str:
        done = subprocess.run(
            [str(self.python), "-c", code],
            capture_output=True,
            text=True,
            cwd=self.home,
            env=self.env(),
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def _link_dependencies(runner: Path, venv: Path) -> None:
    """The runner's installed packages into the venv, hard-linked (copied across file systems), without
    any trace of the gateway's own dev install."""
    ignore = shutil.ignore_patterns("__editable__*", "kernel_gateway-*", "gateway", "harness", "bot")
    try:
        shutil.copytree(runner, venv, ignore=ignore, symlinks=True, dirs_exist_ok=True, copy_function=os.link)
    except shutil.Error:
        shutil.copytree(runner, venv, ignore=ignore, symlinks=True, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("wheel")
    assert not work.is_relative_to(REPO_ROOT)
    source = work / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work, source],
        env=_clean_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = work.glob("kernel_gateway-*.whl")
    shutil.rmtree(source)  # the installed gateway must not find any source tree
    venv = work / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", venv], env=_clean_env(), check=True, timeout=120
    )
    purelib = Path(
        subprocess.run(
            [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            env=_clean_env(),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    _link_dependencies(Path(sysconfig.get_paths()["purelib"]), purelib)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            *OFFLINE,
            wheel,
        ],
        env=_clean_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    home = work / "home"
    home.mkdir()
    yield Installed(wheel, venv, home)


def test_the_wheel_carries_templates_migrations_sites_and_problems(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for folder in ("templates", "migrations", "site_configs", "problems"):
        shipped = {
            str(path.relative_to(REPO_ROOT))
            for path in (REPO_ROOT / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        assert shipped, folder
        assert {f"gateway/_data/{name}" for name in shipped} <= names
    # and every file of the packages themselves: code, the probe task, the web pages' templates and assets
    for package in ("gateway", "harness", "bot"):
        files = {
            str(path.relative_to(REPO_ROOT))
            for path in (REPO_ROOT / package).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        assert not files - names, f"not in the wheel: {sorted(files - names)}"
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


def test_the_installed_gateway_reads_only_its_own_files(installed: Installed) -> None:
    said = installed.python_says(
        "import gateway, gateway.core.resources as r\n"
        "from gateway.running.bundle import HARNESS_SOURCE\n"
        "from gateway.config.settings import Settings\n"
        "s = Settings()\n"
        "for p in (gateway.__file__, r.templates_dir(), r.migrations_dir(), s.tasks_dir, s.templates_dir,"
        " HARNESS_SOURCE, r.checkout_root(), s.sites_dir): print(p)"
    )
    gateway_file, templates, migrations, tasks, settings_templates, harness, checkout, sites = (
        said.splitlines()
    )
    package = Path(gateway_file).parent
    assert package.is_relative_to(installed.venv), gateway_file
    assert Path(templates) == Path(settings_templates) == package / "_data" / "templates"
    assert (Path(templates) / "local.sh.j2").is_file()
    assert Path(migrations) == package / "_data" / "migrations"
    assert Path(tasks) == package / "_data" / "problems"
    assert Path(harness).is_relative_to(installed.venv)
    assert checkout == "None"
    # not the dev stack's alpha and beta: the per-user folder `gateway sites init` writes to
    assert Path(sites) == installed.home / ".config" / "kernel-gateway" / "sites"


def test_version(installed: Installed) -> None:
    done = installed.gateway("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "gateway 0.1.0"


def _assert_passed(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout, done.stdout
    assert "Warning" not in done.stderr, done.stderr


def test_submit_on_the_local_site_with_a_task_folder(installed: Installed) -> None:
    _assert_passed(installed.gateway("submit", str(CORRECT), "--task", str(VECTORADD), "--no-db"))


def test_submit_names_a_shipped_task(installed: Installed) -> None:
    _assert_passed(installed.gateway("submit", str(CORRECT), "--task", "vectoradd", "--no-db"))


@pytest.mark.integration
async def test_db_migrate_on_a_fresh_database(installed: Installed, dev_env: dict[str, str]) -> None:
    async with scratch_database(dev_env["GATEWAY_DATABASE_URL"], "test_wheel") as dsn:
        done = await asyncio.to_thread(installed.gateway, "db", "migrate", GATEWAY_DATABASE_URL=dsn)
        assert done.returncode == 0, done.stdout + done.stderr
        migrations = (REPO_ROOT / "migrations").glob("0*.sql")
        shipped = sorted(p.stem for p in migrations if ".rollback" not in p.name)
        assert await asyncio.to_thread(applied_migrations, dsn) == shipped
