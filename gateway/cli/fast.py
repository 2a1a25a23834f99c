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

Everything else, and anything the manifest cannot answer exactly, goes to typer (gateway.cli.main). This
module decides who answers and serves the help pages; the cache file and its keys are gateway.cli.fast_cache,
completion from the manifest is gateway.cli.fast_complete."""

from __future__ import annotations

import contextlib
import os
import sys

from gateway.cli.fast_cache import MAX_HELP_ENTRIES, build, help_key, load, save
from gateway.cli.fast_complete import complete_from, forms_key

TYPE_CHECKING = False  # typing itself costs milliseconds: this module loads on every TAB
if TYPE_CHECKING:
    from typing import Any, TextIO

HELP_OPTION = "--help"


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
            from gateway.cli import manifest

            data = build(manifest.build(prog))
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
