"""The fast path's cache file (gateway.cli.fast): the manifest of the command tree, the help pages typer
rendered and the completion help forms, in the user's own cache folder ($XDG_CACHE_HOME/kernel-gateway/,
else ~/.cache/kernel-gateway/), and the keys pages are kept under.

The cache is keyed by the gateway's install and the size and mtime of every module file the CLI loaded (the
gateway's CLI modules, typer, rich, the installed version's METADATA): a change to any of them rebuilds it.
It is JSON, never executed; a file that does not parse, is not the user's own or is for another install
is ignored and rebuilt. Writes are atomic (a new 0600 file renamed over the old one, in a 0700 folder).
Standard library only: this module loads on every TAB."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys

TYPE_CHECKING = False  # typing itself costs milliseconds: this module loads on every TAB
if TYPE_CHECKING:
    from typing import Any, TextIO

FORMAT = 1
MAX_HELP_ENTRIES = 64  # rendered pages kept per install; the oldest go first
MAX_CACHE_BYTES = 16 * 1024 * 1024
CLI_DIR = os.path.dirname(os.path.realpath(__file__))
# What rich, typer and gettext read from the environment when they render help
RENDER_ENV = (
    "NO_COLOR",
    "FORCE_COLOR",
    "PY_COLORS",
    "GITHUB_ACTIONS",
    "TERM",
    "COLORTERM",
    "COLUMNS",
    "LINES",
    "TERMINAL_WIDTH",
    "_TYPER_FORCE_DISABLE_TERMINAL",
    "TYPER_USE_RICH",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "JUPYTER_COLUMNS",
    "JUPYTER_LINES",
    "DATABRICKS_RUNTIME_VERSION",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_MESSAGES",
)


def cli_files() -> list[str]:
    """The CLI's modules: a new one makes the cache stale even before anything imports it."""
    return sorted(os.path.join(CLI_DIR, name) for name in os.listdir(CLI_DIR) if name.endswith(".py"))


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = base if os.path.isabs(base) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "kernel-gateway")


def _install() -> str:
    """Which gateway and which Python: two installs (two venvs) keep two cache files."""
    return f"{CLI_DIR}|{sys.executable}|{sys.version}"


def _fnv1a(text: str) -> int:
    """A short stable hash for a file name (zlib or hashlib would cost more to import than this)."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8", "surrogateescape"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def cache_path() -> str:
    return os.path.join(cache_dir(), f"cli-{_fnv1a(_install()):08x}.json")


def _stat(path: str) -> list[int] | None:
    if not isinstance(path, str):  # a tampered cache: never an int (os.stat would read a descriptor)
        raise TypeError(path)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def _signature(files: list[str]) -> list[list[Any]]:
    return [[path, _stat(path)] for path in files]


def read_json(path: str) -> Any:
    """A cache file's data, when it is the user's own regular file and parses; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_size > MAX_CACHE_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def write_json(path: str, data: Any) -> None:
    """Atomically: a new 0600 file in the 0700 cache folder, renamed over the old; a failure leaves no
    trace (a cache that cannot be written is only slower)."""
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if os.stat(folder).st_uid != os.getuid():
            return
        temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(temporary, path)
    except (OSError, TypeError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def load() -> dict[str, Any] | None:
    """The cache, when it is the user's own, for this install, and not stale."""
    data = read_json(cache_path())
    try:
        if data["format"] != FORMAT or data["install"] != _install() or data["cli_files"] != cli_files():
            return None
        if any(_stat(path) != saved for path, saved in data["signature"]):
            return None
        if not all(isinstance(data[part], dict) for part in ("help", "forms", "root")):
            return None
    except (KeyError, TypeError, ValueError):
        return None
    return data  # type: ignore[no-any-return]


def save(data: dict[str, Any]) -> None:
    write_json(cache_path(), data)


def build(built: dict[str, Any]) -> dict[str, Any]:
    """A fresh cache around ``built``, the manifest of typer's command tree (gateway.cli.manifest.build,
    which loads typer; the caller asks for it, so this module never imports the tree it caches)."""
    return {
        "format": FORMAT,
        "install": _install(),
        "version": built["version"],
        "cli_files": cli_files(),
        "signature": _signature(built["files"]),
        "root": built["root"],
        "help": {},
        "forms": {},
    }


def _terminal_width() -> int | None:
    """The width rich finds: the first of stdin, stdout and stderr that is a terminal."""
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return None


def _isatty(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (OSError, ValueError):
        return False


def help_key(prog_name: str, argv: list[str] | None) -> str:
    """Everything the rendered page depends on besides the code (which the cache's signature covers)."""
    streams = [
        [_isatty(s), getattr(s, "encoding", None), getattr(s, "errors", None)]
        for s in (sys.stdout, sys.stderr)
    ]
    env = {name: os.environ[name] for name in RENDER_ENV if name in os.environ}
    return json.dumps([prog_name, argv, streams, _terminal_width(), env], separators=(",", ":"))
