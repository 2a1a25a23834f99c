"""Checks on what users type: names, free text and submitted code, so the store keeps them verbatim or
the user learns at once what to change (UserError / SubmissionError, never a database error)."""

from __future__ import annotations

import re
import warnings

from gateway.errors import SubmissionError, UserError

MAX_NAME_CHARS = 200  # leaderboard and user names
MAX_DESCRIPTION_CHARS = 20_000  # a leaderboard's description (reference-kernels' longest is a few KiB)
MAX_REASON_CHARS = 500  # an admin's reason for draining a site
VISIBILITIES = ("public", "hidden")
JOINERS = "\u200c\u200d"  # zero-width non-joiner and joiner: format characters that names may hold
_JOINERS = dict.fromkeys(map(ord, JOINERS))
RUN_ID_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]{0,35}")  # a run id (a UUID) or its first characters
FULL_RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PUBLIC_SUBMISSION_ID = re.compile(r"[0-9a-f]{32}")  # submissions.public_id: 128 random bits, hex
BIGINT_MAX = 2**63 - 1  # PostgreSQL's bigint: the range of every numeric id the store keeps


def public_submission_key(submission: str | int, by_number: bool) -> str | int | None:
    """What a submission is looked up by: its public id (32 hex digits), or, where ``by_number`` (admins),
    its number too. None for anything else (it names no submission: 'not found', never an error of the
    database)."""
    text = str(submission).strip().lower()
    if PUBLIC_SUBMISSION_ID.fullmatch(text):
        return text
    if by_number and text.isascii() and text.isdigit() and 0 < int(text) <= BIGINT_MAX:
        return int(text)
    return None


def shown(value: str, limit: int = 80) -> str:
    """A user's string for an error message: quoted and escaped (no markup, no control characters, no
    lone surrogates from undecodable bytes), cut to ``limit`` characters."""
    return f"{value[:limit]!r}{'…' if len(value) > limit else ''}"


def printable(text: str) -> bool:
    """Printable in Python's sense (no control or format characters, no lone surrogates, no separators
    but the space), except that zero-width joiners (emoji sequences, Persian and Indic scripts) pass."""
    return text.translate(_JOINERS).isprintable()


def check_name(what: str, name: str, limit: int = MAX_NAME_CHARS) -> None:
    """A name (of a user, a leaderboard) is one line of printable characters, not blank, at most
    ``limit`` characters: no control characters (bidi overrides included), no undecodable bytes.
    UserError otherwise."""
    if not name.translate(_JOINERS).strip() or len(name) > limit or not printable(name):
        raise UserError(
            f"{what} {shown(name)} ({len(name)} characters) cannot be used: one line of printable "
            f"characters, not blank, at most {limit}"
        )


DISCORD_ACCOUNT = re.compile(r"discord:[0-9]{1,20}")


def check_account(name: str) -> None:
    """An account name (users.name): a name (``check_name``); one in Discord's namespace is exactly
    'discord:<user id>', the account of that Discord user."""
    check_name("user name", name)
    if name.startswith("discord:") and not DISCORD_ACCOUNT.fullmatch(name):
        raise UserError(f"user name {shown(name)}: names starting 'discord:' are 'discord:<Discord user id>'")


def check_text(what: str, text: str, limit: int) -> None:
    """Free text (a description, a reason): lines of printable characters and tabs, at most ``limit``
    characters. UserError otherwise."""
    if len(text) > limit:
        raise UserError(f"{what} is {len(text)} characters long; at most {limit}")
    bad = next((c for c in text if not printable(c) and c not in "\n\t"), None)
    if bad is not None:
        raise UserError(f"{what} holds the character {bad!r}: only printable text, newlines and tabs")


def check_code(code: str, file_name: str, max_bytes: int) -> None:
    """Submitted code: a usable file name, UTF-8 text, not empty, at most ``max_bytes``."""
    if not file_name or len(file_name) > 255 or "/" in file_name or not file_name.isprintable():
        raise SubmissionError(
            f"the file name {shown(file_name)} cannot be used: one line of printable characters "
            "without '/', at most 255"
        )
    try:
        size = len(code.encode())
    except UnicodeEncodeError as exc:  # lone surrogates: bytes that were not UTF-8, smuggled in
        raise SubmissionError(f"{file_name} is not UTF-8 text ({exc.reason} at {exc.start})") from None
    if size == 0 or not code.strip():
        raise SubmissionError(f"{file_name} is empty")
    if size > max_bytes:
        raise SubmissionError(f"{file_name} is {size} bytes; the limit is {max_bytes} bytes")
    if "\x00" in code:
        raise SubmissionError(f"{file_name} contains NUL bytes: submit Python source text")


# File name endings a task's language accepts (task.yml ``lang``).
SOURCE_SUFFIXES = {"py": (".py",)}
LANGUAGE_NAMES = {"py": "Python"}
NOT_QUEUED = "fix it and submit again; nothing was queued"
MAX_SHOWN_LINE = 100  # characters of an offending source line quoted in an error


def source_suffixes(lang: str) -> tuple[str, ...]:
    """The file name endings a task in ``lang`` takes."""
    return SOURCE_SUFFIXES.get(lang, (f".{lang}",))


def check_source_name(file_name: str, lang: str) -> None:
    """A submission's file name ends as the task's language wants (a Python task takes a .py file), so
    the file is what the task runs; SubmissionError saying what to rename it to otherwise."""
    suffixes = source_suffixes(lang)
    if file_name.lower().endswith(suffixes):
        return
    stem = file_name.rsplit(".", 1)[0] if "." in file_name.lstrip(".") else file_name
    renamed = stem if stem.lower().endswith(suffixes) else stem + suffixes[0]  # kernel.py.txt: kernel.py
    language = LANGUAGE_NAMES.get(lang, lang)
    raise SubmissionError(
        f"{shown(file_name)} is not a {language} file: this task takes a {' or '.join(suffixes)} file; "
        f"if it holds {language} source, rename it to {shown(renamed)} — nothing was queued"
    )


def _quoted_line(text: str | None) -> str:
    """The offending source line for an error: one line of printable characters, cut short."""
    line = "".join(c if printable(c) else " " for c in (text or "").strip())
    line = line.replace("`", "'")  # it is shown between backticks
    return f"`{line[:MAX_SHOWN_LINE]}{'…' if len(line) > MAX_SHOWN_LINE else ''}`" if line else ""


def check_source(code: str, file_name: str, lang: str) -> None:
    """A submission its task can run: the file name fits the task's language, and Python source compiles
    (``compile`` parses and builds bytecode; it runs nothing). One SubmissionError naming the user's
    file and line otherwise, before anything is stored or queued."""
    check_source_name(file_name, lang)
    if lang != "py":
        return
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


def check_upload_name(file_name: str, size: int, lang: str, max_bytes: int) -> None:
    """An uploaded file's name and size, checked before it is downloaded: the task's language and the
    size limit. SubmissionError otherwise."""
    check_source_name(file_name, lang)
    if size > max_bytes:
        raise SubmissionError(f"{shown(file_name)} is {size} bytes; the limit is {max_bytes} bytes")
    if size == 0:
        raise SubmissionError(f"{shown(file_name)} is empty")


def decode_upload(data: bytes, file_name: str, max_bytes: int) -> str:
    """An uploaded submission as text: UTF-8 (a BOM is dropped), within the limit, checked by
    ``check_code``. SubmissionError otherwise."""
    if len(data) > max_bytes:
        raise SubmissionError(f"{shown(file_name)} is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        code = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubmissionError(
            f"{shown(file_name)} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "save it as UTF-8 and submit it again"
        ) from None
    check_code(code, file_name, max_bytes)
    return code
