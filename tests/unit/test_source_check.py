"""A submission is checked at submit, before anything is stored or queued: its file name against the task's
language, and its source compiled (never run), with one error naming the user's own file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config.settings import Settings
from gateway.core.errors import SubmissionError
from gateway.service.facade import Gateway
from gateway.service.intake import check_code, check_source, decode_upload
from gateway.service.model import SubmitRequest
from tests.unit.fakes import tiny_task


def refused(code: str, file_name: str = "kernel.py", lang: str = "py") -> str:
    with pytest.raises(SubmissionError) as caught:
        check_source(code, file_name, lang)
    return str(caught.value)


def test_a_syntax_error_names_the_users_file_line_and_text() -> None:
    message = refused("import torch\n\ndef f(:\n    pass\n")
    assert message == (
        "kernel.py, line 3: invalid syntax: `def f(:` — fix it and submit again; nothing was queued"
    )
    assert "submission.py" not in message


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def f():\nreturn 1\n", "kernel.py, line 2: IndentationError: expected an indented block"),
        ("if x:\n\tpass\n        pass\n", "kernel.py, line 3: "),
        ("x = (1,\n", "kernel.py, line 1: '(' was never closed"),
        ("print 'hi'\n", "kernel.py, line 1: Missing parentheses in call to 'print'"),
        ("x = " + "(" * 300 + "\n", "kernel.py, line 1: too many nested parentheses"),
    ],
)
def test_each_kind_of_syntax_error_is_one_line_with_the_file_and_line(code: str, expected: str) -> None:
    message = refused(code)
    assert message.startswith(expected) and "\n" not in message
    assert message.endswith("nothing was queued")


def test_source_is_compiled_never_run() -> None:
    check_source("raise SystemExit('ran')\nimport os\nos._exit(3)\n", "kernel.py", "py")  # returns: not run


def test_a_line_too_deep_for_the_parser_is_refused_not_a_crash() -> None:
    assert refused("x = " + "-" * 200_000 + "1\n") == (
        "kernel.py nests too deeply for Python's compiler — fix it and submit again; nothing was queued"
    )


def test_the_file_name_must_fit_the_tasks_language() -> None:
    message = refused("x = 1\n", "kernel.cu")
    assert message == (
        "'kernel.cu' is not a Python file: this task takes a .py file; if it holds Python source, rename "
        "it to 'kernel.py' — nothing was queued"
    )
    assert "rename it to 'solution.py'" in refused("x = 1\n", "solution")
    assert "rename it to 'submission.py'" in refused("x = 1\n", "submission.py.txt")
    check_source("x = 1\n", "Kernel.PY", "py")


def test_comments_only_and_warnings_pass_the_check() -> None:
    check_source("# nothing yet\n# custom_kernel comes later\n", "kernel.py", "py")
    check_source("import re\nPATTERN = '\\d+'\nassert (1, 2)\n", "kernel.py", "py")  # SyntaxWarnings only


def test_the_quoted_line_cannot_carry_control_characters_or_break_its_backticks() -> None:
    message = refused("x = `\x1b[31m` +\n")
    assert "\x1b" not in message and message.count("`") == 2


def test_empty_binary_and_nul_files_are_refused_before_compiling() -> None:
    with pytest.raises(SubmissionError, match=r"'kernel\.py' is empty"):
        check_code("  \n# \n"[:3], "kernel.py", 1000)
    with pytest.raises(SubmissionError, match="contains NUL bytes"):
        check_code("x = 1\x00\n", "kernel.py", 1000)
    with pytest.raises(SubmissionError, match="not UTF-8 text"):
        decode_upload(b"x = '\xe9'\n", "kernel.py")
    assert "null bytes" in refused("x = 1\x00\n")  # compile's own refusal, should a caller skip check_code


async def test_the_service_refuses_before_any_site_is_asked(tmp_path: Path) -> None:
    """A run straight to a site (no database) is checked as an enqueued one is: no site is configured
    here, so reaching the route would fail otherwise."""
    gateway = Gateway(Settings(sites_dir=tmp_path, local_workdir=tmp_path / "runs"), {}, None)
    try:
        for file_name, expected in [("mine.py", "mine.py, line 1: "), ("mine.cu", "rename it to 'mine.py'")]:
            request = SubmitRequest(
                "def custom_kernel(d)\n", file_name, "u", tiny_task(), site="alpha", admin=True
            )
            with pytest.raises(SubmissionError, match=re.escape(expected)):
                await gateway.submit(request)
    finally:
        await gateway.close()
