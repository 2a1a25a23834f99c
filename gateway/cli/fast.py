"""The `gateway` command's entry point: `--help` and shell completion without loading typer (issue 18).

A typer CLI costs several times a bare Python to start (typer, click and rich load before anything runs),
and a TAB press or `--help` is answered on every keystroke. So the console script starts here, with the
standard library only, and answers two things from a cache in the user's own cache folder
($XDG_CACHE_HOME/kernel-gateway/, else ~/.cache/kernel-gateway/):

- shell completion (typer's protocol: _GATEWAY_COMPLETE=complete_bash|complete_zsh|complete_fish), from a
  manifest of the command tree that typer itself wrote (gateway.cli.manifest); a value is completed by the
  same gateway.cli.complete function typer calls;
- a help request (`gateway`, `gateway --help`, `gateway CMD ... --help`, a group alone), with the bytes
  typer printed the first time for the same argv and the same terminal (whether stdout is one, its width,
  encoding, and the variables rich and typer read).

Everything else, and anything the manifest cannot answer exactly, goes to typer (gateway.cli.main). The
cache is keyed by the gateway's install and the size and mtime of every module file the CLI loaded (the
gateway's CLI modules, typer, rich, the installed version's METADATA): a change to any of them rebuilds it.
It is JSON, never executed; a file that does not parse, is not the user's own or is for another install
is ignored and rebuilt. Writes are atomic (a new 0600 file renamed over the old one, in a 0700 folder)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys

TYPE_CHECKING = False  # typing itself costs milliseconds: this module loads on every TAB
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

    Item = tuple[str, str | None]  # a completion: its value and help

FORMAT = 1
HELP_OPTION = "--help"
MAX_HELP_ENTRIES = 64  # rendered pages kept per install; the oldest go first
MAX_CACHE_BYTES = 16 * 1024 * 1024
CLI_DIR = os.path.dirname(os.path.realpath(__file__))
# gateway.cli.complete functions a manifest may name; a name outside this set sends completion to typer
COMPLETERS = ("site_names", "gpu_types", "task_names", "board_names")
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


class NotExact(Exception):
    """The manifest cannot say exactly what typer would answer."""


def cli_files() -> list[str]:
    """The CLI's modules: a new one makes the cache stale even before anything imports it."""
    return sorted(os.path.join(CLI_DIR, name) for name in os.listdir(CLI_DIR) if name.endswith(".py"))


def zsh_escape(text: str) -> str:
    """typer's ZshComplete.format_completion escaping."""
    return (
        text.replace('"', '""')
        .replace("'", "''")
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace(":", r"\\:")
    )


def program_name() -> str:
    """The name click shows and derives the completion variable from (click.utils._detect_program_name)."""
    main = sys.modules["__main__"]
    path = sys.argv[0]
    if getattr(main, "__package__", None) in {None, ""}:
        return os.path.basename(path)
    py_module = str(main.__package__)
    name = os.path.splitext(os.path.basename(path))[0]
    if name != "__main__":
        py_module = f"{py_module}.{name}"
    return f"python -m {py_module.lstrip('.')}"


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


def build(prog_name: str) -> dict[str, Any]:
    """A fresh cache: the manifest typer's command tree gives (this loads typer)."""
    from gateway.cli import manifest

    built = manifest.build(prog_name)
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


# ---- completion -------------------------------------------------------------------------------------


def split_arg_string(string: str) -> list[str]:
    """click.shell_completion.split_arg_string: shlex, keeping an unfinished last word as it is."""
    import shlex

    lex = shlex.shlex(string, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    out: list[str] = []
    try:
        out.extend(lex)
    except ValueError:
        out.append(lex.token)
    return out


def completion_args(shell: str) -> tuple[list[str], str]:
    """What typer's BashComplete/ZshComplete/FishComplete.get_completion_args return."""
    if shell == "bash":
        cwords = split_arg_string(os.environ["COMP_WORDS"])
        cword = int(os.environ["COMP_CWORD"])
        args = cwords[1:cword]
        incomplete = cwords[cword] if cword < len(cwords) else ""
        if cword < 0:
            raise NotExact
        return args, incomplete
    completion = os.getenv("_TYPER_COMPLETE_ARGS", "")
    words = split_arg_string(completion)[1:]
    if words and not completion.endswith(" "):
        return words[:-1], words[-1]
    return words, ""


def _option(node: dict[str, Any], name: str) -> dict[str, Any] | None:
    for param in node["params"]:
        if param["option"] and (name in param["opts"] or name in param["secondary_opts"]):
            return param  # type: ignore[no-any-return]
    return None


def _resolve(root: dict[str, Any], args: list[str]) -> tuple[dict[str, Any], set[str]]:
    """The command the complete args lead to and the parameters given on the line (click's
    _resolve_context with resilient parsing), for the lines the manifest can follow exactly."""
    node, arguments, index = root, 0, 0
    given: set[str] = set()
    while index < len(args):
        word = args[index]
        if node["chain"] or word == "--":
            raise NotExact
        if word.startswith("-") and word != "-":
            name, equals, _ = word.partition("=")
            if equals and not name.startswith("--"):
                raise NotExact
            param = _option(node, name)
            if param is None or not param["plain"] or (param["nargs"] != 1 and not param["flag"]):
                raise NotExact
            if param["flag"] and equals:
                raise NotExact
            if not param["flag"] and not equals:
                if index + 1 == len(args):  # its value is what is being typed: click stops here
                    return node, given
                index += 1  # click takes the next word as the value, whatever it looks like
            given.add(param["name"])
            index += 1
            continue
        if node["group"]:
            child = next((c for c in node["commands"] if c["name"] == word), None)
            if child is None:
                raise NotExact
            node, given, arguments = child["node"], set(), 0
            index += 1
            continue
        positional = [p for p in node["params"] if not p["option"]]
        if (
            arguments >= len(positional)
            or positional[arguments]["nargs"] != 1
            or not positional[arguments]["plain"]
        ):
            raise NotExact
        given.add(positional[arguments]["name"])
        arguments += 1
        index += 1
    if node["chain"]:
        raise NotExact
    return node, given


def _option_names(node: dict[str, Any], given: set[str], incomplete: str) -> list[Item]:
    """click Command.shell_complete: the option strings not given yet (typer options only)."""
    items: list[Item] = []
    if not incomplete or incomplete[0].isalnum():
        return items
    for param in node["params"]:
        if not param["option"] or param["hidden"]:
            continue
        if not param["multiple"] and param["name"] in given:
            continue
        items.extend(
            (name, param["help"])
            for name in [*param["opts"], *param["secondary_opts"]]
            if name.startswith(incomplete)
        )
    return items


def _command_items(node: dict[str, Any], given: set[str], incomplete: str) -> list[Item]:
    """TyperGroup.shell_complete (visible subcommands, then options) or Command.shell_complete."""
    items: list[Item] = []
    if node["group"]:
        items = [
            (c["name"], c["help"])
            for c in node["commands"]
            if c["name"].startswith(incomplete) and not c["hidden"]
        ]
    return items + _option_names(node, given, incomplete)


def _value_items(param: dict[str, Any], incomplete: str) -> list[Item]:
    """_TyperParameter.shell_complete for this parameter's value."""
    how = param["complete"]
    kind = how["kind"]
    if kind == "function":
        name = how["function"]
        if name not in COMPLETERS:
            raise NotExact
        from gateway.cli import complete

        completer: Callable[[str], list[Any]] = getattr(complete, name)
        items: list[Item] = []
        for found in completer(incomplete):
            if isinstance(found, str) and found.startswith(incomplete):
                items.append((found, None))
            elif not isinstance(found, str):
                raise NotExact
        return items
    if kind == "choice":
        choices = [str(c) for c in how["choices"]]
        if how["case_sensitive"]:
            return [(c, None) for c in choices if c.startswith(incomplete)]
        lowered = incomplete.lower()
        return [(c, None) for c in choices if c.lower().startswith(lowered)]
    if kind == "file":
        return [(incomplete, None)]
    if kind == "none":
        return []
    raise NotExact


def completions(root: dict[str, Any], args: list[str], incomplete: str) -> list[Item]:
    """click's get_completions (_resolve_context, then _resolve_incomplete), from the manifest."""
    node, given = _resolve(root, args)
    args = list(args)
    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete.startswith("-"):
        name, _, incomplete = incomplete.partition("=")
        args.append(name)
    if "--" not in args and incomplete.startswith("-"):
        return _command_items(node, given, incomplete)
    params = node["params"]
    last = args[-1] if args else None
    for param in params:
        if param["option"] and not param["flag"]:
            if param["nargs"] != 1:
                raise NotExact
            if last is not None and last.startswith("-") and last in param["opts"]:
                return _value_items(param, incomplete)
    for param in params:
        if not param["option"]:
            if param["nargs"] != 1:
                raise NotExact
            if param["name"] not in given:
                return _value_items(param, incomplete)
    return _command_items(node, given, incomplete)


def format_completions(shell: str, items: list[Item], forms: dict[str, str]) -> str:
    """typer's format_completion and complete() for bash, zsh and fish; `forms` holds each help as typer
    shows it to this shell in this terminal."""
    if shell == "bash":
        return "\n".join(value for value, _ in items)
    shown = {text: forms[text] for _, text in items if text}  # KeyError: not rendered for this terminal yet
    if shell == "zsh":
        lines = [f'"{zsh_escape(v)}":"{shown[h]}"' if h else f'"{zsh_escape(v)}"' for v, h in items]
        return f"_arguments '*: :(({chr(10).join(lines)}))'" if lines else "_files"
    lines = [f"{v}\t{shown[h]}" if h else v for v, h in items]
    action = os.getenv("_TYPER_COMPLETE_FISH_ACTION", "")
    if action == "get-args" and lines:
        return "\n".join(lines)
    if action == "is-args":
        raise SystemExit(0 if lines else 1)
    return ""


def forms_key(prog_name: str) -> str:
    """The terminal conditions that typer's rendering of completion help depends on."""
    return help_key(prog_name, None)


def complete_from(data: dict[str, Any], instruction: str, prog_name: str) -> str | None:
    """The completion output for this instruction, or None when typer must answer."""
    action, _, shell = instruction.partition("_")
    if action != "complete" or shell not in ("bash", "zsh", "fish"):
        return None
    try:
        args, incomplete = completion_args(shell)
        items = completions(data["root"], args, incomplete)
        forms = data["forms"].get(forms_key(prog_name), {}).get(shell, {}) if shell != "bash" else {}
        text = format_completions(shell, items, forms)
    except SystemExit:
        raise
    except Exception:  # NotExact, a manifest that is not what it should be, a completer that failed
        return None
    if "\x1b" in text:  # click strips ANSI codes from a pipe: leave that to it
        return None
    return text


# ---- help -------------------------------------------------------------------------------------------


def is_help_request(root: dict[str, Any], argv: list[str]) -> bool:
    """`gateway`, `gateway [CMD ...] --help`, or a group that shows its help when given nothing; nothing
    else (no -v, no option value), so a page is only ever served for a request that only asks for it."""
    words = argv[:-1] if argv and argv[-1] == HELP_OPTION else argv
    node = root
    for word in words:
        child = (
            next((c for c in node.get("commands", []) if c["name"] == word), None) if node["group"] else None
        )
        if child is None:
            return False
        node = child["node"]
    if argv and argv[-1] == HELP_OPTION:
        return True
    return bool(node["group"] and node["no_args_is_help"])


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


class Tee:
    """A text stream that writes through to the real one and keeps what was written; it answers isatty,
    encoding and fileno as the real one does, so typer and rich render exactly as they would to it."""

    def __init__(self, stream: TextIO, name: str, record: list[list[str]]) -> None:
        self._stream, self._name, self._record = stream, name, record

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        if isinstance(text, str):
            self._record.append([self._name, text])
        return written

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":  # bytes written past the text layer would not be kept: there is none
            raise AttributeError(name)
        return getattr(self._stream, name)


def valid_page(entry: Any) -> bool:
    """A kept page as _render_and_store writes it (checked whole before a byte of it is printed)."""
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("code"), int)
        or not isinstance(entry.get("out"), list)
    ):
        return False
    return all(
        isinstance(part, list)
        and len(part) == 2
        and part[0] in ("stdout", "stderr")
        and isinstance(part[1], str)
        for part in entry["out"]
    )


def serve_help(entry: dict[str, Any]) -> int:
    try:
        for name, text in entry["out"]:
            stream = sys.stdout if name == "stdout" else sys.stderr
            stream.write(text)
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # as rich's Console.on_broken_pipe: the reader left (`| head`); exit 1, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return int(entry["code"])


def _run_typer() -> None:
    from gateway.cli.main import app

    app()


def _exit_code(exc: SystemExit) -> int | None:
    code = exc.code
    if code is None:
        return 0
    return code if isinstance(code, int) else None


def _render_and_store(data: dict[str, Any], key: str) -> None:
    """typer prints the page; what it wrote to this stdout and stderr is kept under the key."""
    record: list[list[str]] = []
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout = Tee(real_out, "stdout", record)
    sys.stderr = Tee(real_err, "stderr", record)
    try:
        _run_typer()
    except SystemExit as exc:
        code = _exit_code(exc)
        sys.stdout, sys.stderr = real_out, real_err
        if code is not None:
            pages = data["help"]
            pages.pop(key, None)
            pages[key] = {"out": record, "code": code}
            while len(pages) > MAX_HELP_ENTRIES:
                pages.pop(next(iter(pages)))
            save(data)
        raise
    finally:
        sys.stdout, sys.stderr = real_out, real_err


def _complete_and_keep_forms(data: dict[str, Any], prog_name: str, instruction: str) -> None:
    """typer completes; then, for a terminal whose completion help forms are not kept yet, they are
    rendered (typer is loaded by now) and kept, so the next zsh or fish TAB in this terminal is served."""
    try:
        _run_typer()
    finally:
        key = forms_key(prog_name)
        shows_help = instruction in ("complete_zsh", "complete_fish")  # bash shows values only
        if shows_help and key not in data["forms"] and "typer" in sys.modules:
            with contextlib.suppress(Exception):
                from gateway.cli import manifest

                data["forms"][key] = manifest.help_forms(data["root"])
                while len(data["forms"]) > MAX_HELP_ENTRIES:
                    data["forms"].pop(next(iter(data["forms"])))
                save(data)


def main() -> None:
    """The console script: a cached answer when there is an exact one, typer otherwise."""
    argv = sys.argv[1:]
    prog = program_name()
    instruction = os.environ.get(f"_{prog}_COMPLETE".replace("-", "_").upper())
    completing = bool(instruction)
    # a help request, or a group given nothing (`gateway sites`): worth reading the cache for
    asking_help = not argv or argv[-1] == HELP_OPTION or (len(argv) <= 2 and not argv[-1].startswith("-"))
    if not completing and not asking_help:
        _run_typer()
        return
    data = load()
    if data is None:
        try:
            data = build(prog)
        except Exception:  # a manifest typer's tree cannot give must not cost the command: typer runs it
            _run_typer()
            return
        save(data)
    if instruction:
        text = complete_from(data, instruction, prog)
        if text is None:
            _complete_and_keep_forms(data, prog, instruction)
            return
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        raise SystemExit(0)
    if not is_help_request(data["root"], argv):
        _run_typer()
        return
    key = help_key(prog, argv)
    entry = data["help"].get(key)
    if valid_page(entry):
        raise SystemExit(serve_help(entry))
    _render_and_store(data, key)
