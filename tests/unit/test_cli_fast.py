"""The `gateway` script's fast path (gateway.cli.fast): a help page or a completion served from its cache is
byte for byte what typer prints, the cache goes stale when the CLI's code changes, a broken cache is rebuilt,
and a cache hit loads neither typer, click, rich nor pydantic.

Each case runs two scripts named `gateway` in fresh interpreters, so both show the same program name: one
runs the typer app (what the script ran before), the other gateway.cli.fast.main (what it runs now)."""

from __future__ import annotations

import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from fcntl import ioctl
from pathlib import Path

import pytest

from gateway.cli import fast, fast_cache, manifest

ROOT = Path(__file__).resolve().parents[2]
TYPER_SCRIPT = "import sys\nfrom gateway.cli.main import app\nsys.exit(app())\n"
# the entry point as pip writes it, plus a report of the modules loaded when PROBE_MODULES names a file
FAST_SCRIPT = """import atexit, json, os, sys
from gateway.cli.fast import main

def report():
    if os.environ.get("PROBE_MODULES"):
        with open(os.environ["PROBE_MODULES"], "w") as out:
            json.dump(sorted(sys.modules), out)

atexit.register(report)
sys.exit(main())
"""
FRAMEWORK = ("typer", "click", "rich", "pydantic", "pydantic_settings", "shellingham")


@dataclass(frozen=True)
class Done:
    code: int
    out: bytes
    err: bytes


@dataclass(frozen=True)
class Setup:
    typer: Path
    fast: Path
    env: dict[str, str]
    cache: Path
    probe: Path

    def run(self, script: Path, args: list[str], **env: str) -> Done:
        done = subprocess.run(
            [sys.executable, str(script), *args],
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        return Done(done.returncode, done.stdout, done.stderr)

    def loaded(self) -> set[str]:
        return set(json.loads(self.probe.read_text()))


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    for name, text in (("typer", TYPER_SCRIPT), ("fast", FAST_SCRIPT)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "gateway").write_text(text)
    sites, tasks = tmp_path / "sites", tmp_path / "tasks"
    sites.mkdir()
    (sites / "alpha.yaml").write_text("name: alpha\npartitions:\n  - name: h100\n    gpu_type: H100\n")
    (sites / "beta.yaml").write_text("name: beta\npartitions:\n  - name: l4\n    gpu_type: L4\n")
    for task in ("grayscale", "vectoradd"):
        (tasks / task).mkdir(parents=True)
        (tasks / task / "task.yml").write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "_GATEWAY_", "_TYPER_"))}
    for name in fast_cache.RENDER_ENV:
        env.pop(name, None)
    env.update(
        PYTHONPATH=str(ROOT),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        GATEWAY_SITES_DIR=str(sites),
        GATEWAY_TASKS_DIR=str(tasks),
        TERM="xterm-256color",
    )
    return Setup(
        tmp_path / "typer" / "gateway",
        tmp_path / "fast" / "gateway",
        env,
        tmp_path / "cache" / "kernel-gateway",
        tmp_path / "probe.json",
    )


def framework_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in FRAMEWORK)


HELP_ARGVS = [["--help"], ["submit", "--help"], ["sites", "--help"], ["leaderboard", "create", "--help"], []]


@pytest.mark.parametrize("args", HELP_ARGVS, ids=lambda a: " ".join(a) or "no args")
def test_help_is_typers_page_byte_for_byte(setup: Setup, args: list[str]) -> None:
    wanted = setup.run(setup.typer, args)
    assert wanted.out.strip() and wanted.code in (0, 2)
    rendered = setup.run(setup.fast, args)  # a miss: typer renders it, the cache keeps it
    served = setup.run(setup.fast, args, PROBE_MODULES=str(setup.probe))  # a hit
    assert rendered == wanted
    assert served == wanted
    assert framework_in(setup.loaded()) == []
    assert "gateway.cli.main" not in setup.loaded()


def _in_pty(setup: Setup, script: Path, args: list[str], columns: int) -> bytes:
    """What the script writes to a terminal `columns` wide (stdout and stderr both the pty's)."""
    controller, terminal = pty.openpty()
    ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    with subprocess.Popen(
        [sys.executable, str(script), *args],
        env=setup.env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    ) as process:
        os.close(terminal)
        chunks = []
        while True:
            ready, _, _ = select.select([controller], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
    os.close(controller)
    return b"".join(chunks)


@pytest.mark.parametrize("args", [["--help"], ["submit", "--help"]], ids=" ".join)
def test_help_in_a_terminal_keeps_typers_colours_and_width(setup: Setup, args: list[str]) -> None:
    wanted = _in_pty(setup, setup.typer, args, 100)
    assert b"\x1b[" in wanted  # rich coloured it: a terminal
    assert _in_pty(setup, setup.fast, args, 100) == wanted
    assert _in_pty(setup, setup.fast, args, 100) == wanted
    narrow = _in_pty(setup, setup.typer, args, 60)
    assert narrow != wanted
    assert _in_pty(setup, setup.fast, args, 60) == narrow  # another width: another page, not the kept one


COMPLETIONS = [
    "gateway sub",  # subcommand names
    "gateway ",
    "gateway submit f.py --",  # options of submit
    "gateway submit f.py --site ",  # site names
    "gateway submit f.py --site=a",
    "gateway submit f.py --mode b",  # a choice
    "gateway submit f.py --gpu ",  # GPU types
    "gateway submit f.py --task v",  # tasks
    "gateway submit ",  # the file argument
    "gateway sites va",  # a nested command
    "gateway leaderboard create -",
]


def _completing(shell: str, line: str) -> dict[str, str]:
    if shell == "bash":
        cword = len(line.split()) - (0 if line.endswith(" ") else 1)
        return {"_GATEWAY_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    env = {"_GATEWAY_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line}
    if shell == "fish":
        env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    return env


@pytest.mark.parametrize("line", COMPLETIONS)
def test_bash_completion_is_typers(setup: Setup, line: str) -> None:
    env = _completing("bash", line)
    setup.run(setup.fast, [], **env)  # builds the cache
    served = setup.run(setup.fast, [], PROBE_MODULES=str(setup.probe), **env)
    assert served == setup.run(setup.typer, [], **env)
    assert framework_in(setup.loaded()) == []


@pytest.mark.parametrize("shell", ["zsh", "fish"])
@pytest.mark.parametrize("line", ["gateway s", "gateway submit f.py --", "gateway submit f.py --mode "])
def test_zsh_and_fish_completion_is_typers(setup: Setup, shell: str, line: str) -> None:
    """Their help texts are rendered by rich at the terminal's width: kept per terminal."""
    for columns in ("80", "30"):
        env = {**_completing(shell, line), "COLUMNS": columns}
        setup.run(setup.fast, [], **env)
        served = setup.run(setup.fast, [], PROBE_MODULES=str(setup.probe), **env)
        assert served == setup.run(setup.typer, [], **env)
        assert served.out.strip()
        assert framework_in(setup.loaded()) == []


def test_completion_the_manifest_cannot_follow_is_typers(setup: Setup) -> None:
    """An unknown command, `--`, an option that runs a callback: typer answers, the same as ever."""
    for line in ("gateway nosuch ", "gateway submit f.py -- ", "gateway --version "):
        env = _completing("bash", line)
        setup.run(setup.fast, [], **env)
        assert setup.run(setup.fast, [], PROBE_MODULES=str(setup.probe), **env) == setup.run(
            setup.typer, [], **env
        )
        assert "typer" in setup.loaded()


@pytest.fixture
def cache_env(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.setenv("XDG_CACHE_HOME", setup.env["XDG_CACHE_HOME"])
    monkeypatch.setattr(sys, "argv", ["gateway"])
    return setup


def test_a_changed_cli_module_makes_the_cache_stale(cache_env: Setup, tmp_path: Path) -> None:
    data = fast_cache.build(manifest.build("gateway"))
    signed = {path for path, _ in data["signature"]}
    assert set(fast_cache.cli_files()) <= signed  # every CLI module, even one nothing imports yet
    assert str(Path(fast_cache.__file__).resolve().parent / "main.py") in signed
    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    data["signature"].append([str(module), fast_cache._stat(str(module))])
    fast_cache.save(data)
    assert fast_cache.load() == data
    os.utime(module, ns=(1, 1))
    assert fast_cache.load() is None
    data["signature"][-1][1] = fast_cache._stat(str(module))
    fast_cache.save(data)
    assert fast_cache.load() == data
    module.write_text("x = 22\n")
    os.utime(module, ns=(1, 1))  # the same mtime, another size
    assert fast_cache.load() is None


def test_a_new_cli_module_makes_the_cache_stale(cache_env: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    data = fast_cache.build(manifest.build("gateway"))
    fast_cache.save(data)
    assert fast_cache.load() == data
    listed = [*fast_cache.cli_files(), "/elsewhere/new.py"]
    monkeypatch.setattr(fast_cache, "cli_files", lambda: listed)
    assert fast_cache.load() is None


def test_the_cache_is_private_and_only_ever_json(cache_env: Setup) -> None:
    fast_cache.save(fast_cache.build(manifest.build("gateway")))
    files = list(cache_env.cache.iterdir())
    assert [f.name for f in files] == [Path(fast_cache.cache_path()).name]  # no temporary file left
    assert cache_env.cache.stat().st_mode & 0o777 == 0o700
    assert files[0].stat().st_mode & 0o777 == 0o600
    assert json.loads(files[0].read_text())["format"] == fast_cache.FORMAT


@pytest.mark.parametrize(
    "broken",
    [b"{not json", b"[]", b'{"format": 1}', b"\x00\xff" * 10],
    ids=["not json", "a list", "no fields", "binary"],
)
def test_a_broken_cache_is_ignored_and_rebuilt(setup: Setup, broken: bytes) -> None:
    path = Path(cache_path_for(setup))
    path.parent.mkdir(parents=True)
    path.write_bytes(broken)
    assert setup.run(setup.fast, ["--help"]) == setup.run(setup.typer, ["--help"])
    assert json.loads(path.read_text())["format"] == fast_cache.FORMAT
    assert setup.run(setup.fast, ["--help"], PROBE_MODULES=str(setup.probe)).out.strip()
    assert framework_in(setup.loaded()) == []


def cache_path_for(setup: Setup) -> str:
    """The cache file a `gateway` of this interpreter and this checkout uses."""
    done = subprocess.run(
        [sys.executable, "-c", "from gateway.cli import fast_cache; print(fast_cache.cache_path())"],
        env=setup.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_a_cache_for_another_install_is_ignored(cache_env: Setup) -> None:
    data = fast_cache.build(manifest.build("gateway"))
    data["install"] = "/another/venv"
    fast_cache.save(data)
    assert fast_cache.load() is None


def test_a_foreign_page_is_never_printed(setup: Setup) -> None:
    """A page kept for one argv answers only that argv; anything more than a help request goes to typer."""
    setup.run(setup.fast, ["--help"])
    path = Path(cache_path_for(setup))
    data = json.loads(path.read_text())
    (key,) = data["help"]
    data["help"][key]["out"] = [["stdout", "KEPT PAGE\n"]]
    path.write_text(json.dumps(data))
    assert setup.run(setup.fast, ["--help"]).out == b"KEPT PAGE\n"  # the hit path serves what is kept
    for args in (["-v", "--help"], ["submit", "--help"], ["--help", "--help"]):
        assert setup.run(setup.fast, args) == setup.run(setup.typer, args)


def test_what_counts_as_a_help_request() -> None:
    root = {
        "group": True,
        "no_args_is_help": True,
        "commands": [
            {"name": "submit", "node": {"group": False, "no_args_is_help": False, "commands": []}},
            {"name": "sites", "node": {"group": True, "no_args_is_help": True, "commands": []}},
        ],
    }
    for args in ([], ["--help"], ["submit", "--help"], ["sites"], ["sites", "--help"]):
        assert fast.is_help_request(root, args), args
    for args in (
        ["-v", "--help"],
        ["submit"],
        ["submit", "x.py", "--help"],
        ["nosuch", "--help"],
        ["--version"],
    ):
        assert not fast.is_help_request(root, args), args


def test_site_completion_follows_the_site_files(setup: Setup) -> None:
    """The site facts are kept too (PyYAML costs more to load than the rest of a TAB press), until a site
    file is changed, added or removed."""
    env = _completing("bash", "gateway submit f.py --site ")
    sites = Path(setup.env["GATEWAY_SITES_DIR"])
    setup.run(setup.fast, [], **env)
    served = setup.run(setup.fast, [], PROBE_MODULES=str(setup.probe), **env)
    assert served.out == b"alpha\nbeta\nlocal\n"
    assert "yaml" not in setup.loaded()
    (sites / "alpha.yaml").write_text("name: gamma\npartitions: []\n")
    (sites / "delta.yaml").write_text("name: delta\n")
    (sites / "beta.yaml").unlink()
    served = setup.run(setup.fast, [], **env)
    assert served.out == b"delta\ngamma\nlocal\n"
    assert served == setup.run(setup.typer, [], **env)
    gpus = _completing("bash", "gateway submit f.py --gpu ")
    (sites / "delta.yaml").write_text("name: delta\npartitions:\n  - name: p\n    gpu_type: B200\n")
    assert setup.run(setup.fast, [], **gpus).out == b"B200\n" == setup.run(setup.typer, [], **gpus).out


def test_a_link_in_place_of_the_cache_is_not_followed(cache_env: Setup, tmp_path: Path) -> None:
    data = fast_cache.build(manifest.build("gateway"))
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(data))
    Path(fast_cache.cache_path()).parent.mkdir(parents=True)
    Path(fast_cache.cache_path()).symlink_to(elsewhere)
    assert fast_cache.load() is None


def test_the_installed_version_is_part_of_the_signature(cache_env: Setup) -> None:
    import importlib.metadata

    version = importlib.metadata.version("kernel-gateway")  # the test environment installs it
    data = fast_cache.build(manifest.build("gateway"))
    assert data["version"] == version
    assert any(path.endswith(("METADATA", "PKG-INFO")) for path, _ in data["signature"])


def test_each_colour_setting_gets_its_own_page(setup: Setup) -> None:
    """FORCE_COLOR colours the page even in a pipe, NO_COLOR takes the colours out, COLUMNS narrows it:
    each is a page of its own, never one kept for other settings."""
    pages = []
    for env in ({}, {"FORCE_COLOR": "1"}, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, {"COLUMNS": "50"}):
        wanted = setup.run(setup.typer, ["--help"], **env)
        assert setup.run(setup.fast, ["--help"], **env) == wanted
        assert setup.run(setup.fast, ["--help"], **env) == wanted
        pages.append(wanted.out)
    assert len(set(pages)) == len(pages)
    assert b"\x1b[" in pages[1] and b"\x1b[" not in pages[0]
