"""`gateway --help` and shell completion load no heavy module (the service, SSH, the database driver, HTTP
clients, the settings), so a later change cannot silently make every TAB press slow again; and the
defaults the CLI writes out agree with the modules it no longer imports for --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Modules that cost tens to hundreds of milliseconds each, and that no help text or completion needs.
HEAVY = (
    "asyncssh",
    "asyncpg",
    "gateway.service.facade",
    "gateway.config.settings",
    "gateway.config.sites",
    "gateway.config.tasks",
    "httpx",
    "fastapi",
    "uvicorn",
    "torch",
    "discord",
    "pydantic_settings",
    "jinja2",
    "yaml",
)
# Loads the CLI in a fresh interpreter as the `gateway` script does, runs it, and prints what was loaded.
PROBE = """
import json, sys
sys.argv = ["gateway", *json.loads(sys.argv[1])]
from gateway.cli.main import app
try:
    app()
except SystemExit:
    pass
print("\\n" + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's cache (gateway.cli.fast) in a folder of the test's, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def loaded_by(args: list[str], **env: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["submit", "--help"],
        ["sites", "--help"],
        ["leaderboard", "create", "--help"],
        ["--version"],
    ],
)
def test_help_loads_no_heavy_module(args: list[str]) -> None:
    modules = loaded_by(args)
    assert "gateway.cli.main" in modules
    assert heavy_in(modules) == []


@pytest.mark.parametrize(
    ("words", "cword"),
    [("gateway sub", "1"), ("gateway submit x.py --mode b", "4"), ("gateway sites v", "2")],
)
def test_completion_loads_no_heavy_module(words: str, cword: str) -> None:
    modules = loaded_by([], _GATEWAY_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=cword)
    assert heavy_in(modules) == []


def test_completing_a_site_reads_yaml_but_not_the_site_models(tmp_path: Path) -> None:
    modules = loaded_by(
        [],
        _GATEWAY_COMPLETE="complete_bash",
        COMP_WORDS="gateway submit x.py --site ",
        COMP_CWORD="4",
        GATEWAY_SITES_DIR=str(tmp_path),
    )
    assert "yaml" in modules
    assert [m for m in heavy_in(modules) if m.split(".")[0] != "yaml"] == []


def test_written_out_defaults_agree_with_their_sources() -> None:
    from gateway.cli import complete, sites
    from gateway.config.sites import LOCAL_SITE_NAME
    from gateway.service.model import DEFAULT_SWEEP_GRACE_S
    from gateway.sitecheck import DEFAULT_PROBE_TIMEOUT_S

    assert sites.PROBE_TIMEOUT_S == DEFAULT_PROBE_TIMEOUT_S
    assert sites.SWEEP_GRACE_HOURS * 3600 == DEFAULT_SWEEP_GRACE_S
    assert complete.LOCAL_SITE == LOCAL_SITE_NAME
