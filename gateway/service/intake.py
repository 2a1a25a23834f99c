"""One intake for uploaded submissions: the rules every front end (the HTTP API, the bot, `gateway submit`
and the remote CLI) and the service's ``enqueue`` check a file by, so the same bad file gets the same
message everywhere, naming the user's own file and saying what to fix, before anything is stored.

In order: a usable file name, the name's ending for the task's language (``LANGUAGES``), the size limit,
UTF-8 text, the text as the store keeps it (not empty, no NUL), the source compiled (never run); and,
where a leaderboard is known, the GPU type (the board's only one when none is given). A check that needs
what a front end does not know yet (the task's language, the server's size limit) is left to the
service, which runs the same functions on every request.

Imports nothing above gateway.core.validation, so the remote client may check a file before uploading it."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.core.errors import SubmissionError, TooLargeError, UserError
from gateway.core.modes import Mode, as_mode
from gateway.core.validation import printable, shown

NOT_QUEUED = "fix it and submit again; nothing was queued"
MAX_SHOWN_LINE = 100  # characters of an offending source line quoted in an error
MAX_FILE_NAME_CHARS = 255


@dataclass(frozen=True)
class Language:
    """A task language (task.yml ``lang``): its name for messages, the file name endings it takes, and
    the check of its source that runs nothing (None: none before the run)."""

    name: str
    suffixes: tuple[str, ...]
    check: Callable[[str, str], None] | None = None


@dataclass(frozen=True)
class Upload:
    """A checked upload: the user's file name, its text, and the mode it runs in."""

    file_name: str
    code: str
    mode: Mode


def _quoted_line(text: str | None) -> str:
    """The offending source line for an error: one line of printable characters, cut short."""
    line = "".join(c if printable(c) else " " for c in (text or "").strip())
    line = line.replace("`", "'")  # it is shown between backticks
    return f"`{line[:MAX_SHOWN_LINE]}{'…' if len(line) > MAX_SHOWN_LINE else ''}`" if line else ""


def compile_python(code: str, file_name: str) -> None:
    """Python source that compiles (``compile`` parses and builds bytecode; it runs nothing); one
    SubmissionError naming the user's file and line otherwise."""
    try:
        with warnings.catch_warnings():  # SyntaxWarnings (invalid escapes, `is` with a literal): no error
            warnings.simplefilter("ignore")
            compile(code, file_name, "exec", dont_inherit=True)
    except SyntaxError as exc:  # IndentationError and TabError included; null bytes too
        where = f"{file_name}, line {exc.lineno}" if exc.lineno else file_name
        kind = "" if type(exc) is SyntaxError else f"{type(exc).__name__}: "
        line = _quoted_line(exc.text)
        shown_line = f": {line}" if line else ""
        raise SubmissionError(f"{where}: {kind}{exc.msg}{shown_line} — {NOT_QUEUED}") from None
    except (MemoryError, RecursionError):  # the parser's own stack: expressions nested thousands deep
        raise SubmissionError(f"{file_name} nests too deeply for Python's compiler — {NOT_QUEUED}") from None
    except ValueError as exc:  # older Pythons: null bytes
        raise SubmissionError(f"{file_name}: {exc} — {NOT_QUEUED}") from None


def check_cuda(code: str, file_name: str) -> None:
    """CUDA source is compiled on the node (nvcc, the harness); refused here is only a Python file sent
    to a CUDA task, which nvcc would reject with a less helpful error."""
    python = re.search(r"^(def custom_kernel\b|from task import|import torch\b)", code, re.M)
    if python is not None:
        line = code.count("\n", 0, python.start()) + 1
        raise SubmissionError(
            f"{shown(file_name)}, line {line}: this looks like Python ({_quoted_line(python.group(0))}), but "
            f"this task takes CUDA C++ source — {NOT_QUEUED}"
        )


# The languages a task may be written in, by task.yml ``lang``.
LANGUAGES: dict[str, Language] = {
    "py": Language("Python", (".py",), compile_python),
    "cu": Language("CUDA", (".cu", ".cuh"), check_cuda),
}


def language(lang: str) -> Language:
    """A task language; one not in ``LANGUAGES`` takes files ending in ``.<lang>`` and is not checked."""
    return LANGUAGES.get(lang) or Language(lang, (f".{lang}",))


def check_file_name(file_name: str) -> None:
    """A file name the store and every message can keep: one line of printable characters, no '/'."""
    if (
        not file_name
        or len(file_name) > MAX_FILE_NAME_CHARS
        or "/" in file_name
        or not file_name.isprintable()
    ):
        raise SubmissionError(
            f"the file name {shown(file_name)} cannot be used: one line of printable characters "
            f"without '/', at most {MAX_FILE_NAME_CHARS}"
        )


def check_source_name(file_name: str, lang: str) -> None:
    """A submission's file name ends as the task's language wants (a Python task takes a .py file), so
    the file is what the task runs; SubmissionError saying what to rename it to otherwise."""
    wanted = language(lang)
    suffixes = wanted.suffixes
    if file_name.lower().endswith(suffixes):
        return
    stem = file_name.rsplit(".", 1)[0] if "." in file_name.lstrip(".") else file_name
    renamed = stem if stem.lower().endswith(suffixes) else stem + suffixes[0]  # kernel.py.txt: kernel.py
    raise SubmissionError(
        f"{shown(file_name)} is not a {wanted.name} file: this task takes a {' or '.join(suffixes)} file; "
        f"if it holds {wanted.name} source, rename it to {shown(renamed)} — nothing was queued"
    )


def check_size(file_name: str, size: int, max_bytes: int) -> None:
    """Within the size limit (TooLargeError) and not empty (SubmissionError)."""
    if size > max_bytes:
        raise TooLargeError(f"{shown(file_name)} is {size} bytes; the limit is {max_bytes} bytes")
    if size == 0:
        raise SubmissionError(f"{shown(file_name)} is empty")


def check_upload_name(file_name: str, size: int, lang: str, max_bytes: int) -> None:
    """An uploaded file's name and size, checked before it is downloaded (the bot's attachments)."""
    check_file_name(file_name)
    check_source_name(file_name, lang)
    check_size(file_name, size, max_bytes)


def decode_upload(data: bytes, file_name: str) -> str:
    """An uploaded file as text: UTF-8 (a BOM is dropped); SubmissionError saying so otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubmissionError(
            f"{shown(file_name)} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "save it as UTF-8 and submit it again"
        ) from None


def check_code(code: str, file_name: str, max_bytes: int | None) -> None:
    """Submitted code as the store keeps it: a usable file name, UTF-8 text, not empty, at most
    ``max_bytes`` (None: the gateway that takes it checks), no NUL."""
    check_file_name(file_name)
    try:
        size = len(code.encode())
    except UnicodeEncodeError as exc:  # lone surrogates: bytes that were not UTF-8, smuggled in
        raise SubmissionError(f"{shown(file_name)} is not UTF-8 text ({exc.reason} at {exc.start})") from None
    if not code.strip():
        raise SubmissionError(f"{shown(file_name)} is empty")
    if max_bytes is not None:
        check_size(file_name, size, max_bytes)
    if "\x00" in code:
        raise SubmissionError(f"{shown(file_name)} contains NUL bytes: submit source text")


def check_source(code: str, file_name: str, lang: str) -> None:
    """A submission its task can run: the file name fits the task's language, and the language's own
    check passes (Python compiles). One SubmissionError naming the user's file (and line) otherwise."""
    check_source_name(file_name, lang)
    check = language(lang).check
    if check is not None:
        check(code, file_name)


def run_mode(mode: str) -> Mode:
    """A mode name in any case (gateway.core.modes), or a UserError listing the modes."""
    try:
        return as_mode(mode)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def take_upload(
    data: bytes,
    file_name: str,
    *,
    max_bytes: int | None,
    lang: str | None = None,
    mode: str = "leaderboard",
    size: int | None = None,
) -> Upload:
    """An uploaded file checked as every front end checks it: ``lang`` the task's language where the
    front end knows it (else the service checks the name and source once the leaderboard is found),
    ``max_bytes`` the limit (None: the gateway it goes to checks), ``size`` the size the upload declared
    when ``data`` was read only up to the limit. SubmissionError (TooLargeError) or UserError otherwise."""
    check_file_name(file_name)
    if lang is not None:
        check_source_name(file_name, lang)
    if max_bytes is not None:
        check_size(file_name, len(data) if size is None else max(size, len(data)), max_bytes)
    code = decode_upload(data, file_name)
    check_code(code, file_name, max_bytes)
    if lang is not None:
        check_source(code, file_name, lang)
    return Upload(file_name, code, run_mode(mode))


def gpu_for_board(requested: str | None, board: str, ranks: Sequence[str]) -> str:
    """The GPU type a submission to leaderboard ``board`` runs on: the one asked for, else the board's
    only one; a UserError listing what the board ranks when it ranks several (or none)."""
    if requested is not None:
        return requested
    if len(ranks) == 1:
        return ranks[0]
    if not ranks:
        raise UserError(f"leaderboard {board} ranks no GPU type yet (an admin gives it some)")
    raise UserError(f"give a GPU type: leaderboard {board} ranks {', '.join(ranks)}")
