"""The one intake for uploads (gateway/service/intake.py): each refusal names the user's own file and says
what to fix; the language's suffix comes from one table; a leaderboard's only GPU type is the default. The
front ends (API, bot, CLI) answer with these messages: tests/integration/test_errors_before_queue.py."""

from __future__ import annotations

import pytest

from gateway.core.errors import SubmissionError, TooLargeError, UserError
from gateway.service.intake import LANGUAGES, Language, gpu_for_board, language, take_upload

GOOD = b"def custom_kernel(data):\n    return data\n"


def refusal(data: bytes, file_name: str = "mine.py", **options: object) -> str:
    with pytest.raises(UserError) as caught:
        take_upload(data, file_name, **{"max_bytes": 1000, "lang": "py", **options})  # type: ignore[arg-type]
    return str(caught.value)


def test_a_good_upload_comes_back_checked_with_its_mode() -> None:
    upload = take_upload(GOOD, "mine.py", max_bytes=1000, lang="py", mode="Benchmark")
    assert (upload.file_name, upload.code, upload.mode) == ("mine.py", GOOD.decode(), "benchmark")
    # without the task's language (a leaderboard not looked up yet) the name and source wait for the service
    assert take_upload(b"def f(:\n", "mine.txt", max_bytes=1000).code == "def f(:\n"


@pytest.mark.parametrize(
    ("data", "file_name", "options", "message"),
    [
        (
            GOOD,
            "mine.cu",
            {},
            "'mine.cu' is not a Python file: this task takes a .py file; if it holds "
            "Python source, rename it to 'mine.py' — nothing was queued",
        ),
        (b"#" * 1001, "mine.py", {}, "'mine.py' is 1001 bytes; the limit is 1000 bytes"),
        (b"#" * 10, "mine.py", {"size": 5000}, "'mine.py' is 5000 bytes; the limit is 1000 bytes"),
        (b"", "mine.py", {}, "'mine.py' is empty"),
        (b"  \n\t\n", "mine.py", {}, "'mine.py' is empty"),
        (
            b"x = '\xe9t\xe9'\n",
            "mine.py",
            {},
            "'mine.py' is not UTF-8 text (byte 0xe9 at offset 5): save it as UTF-8 and submit it again",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "mine.py", {}, "'mine.py' is not UTF-8 text (byte 0x89 at offset 0)"),
        (b"x = 1\x00\n", "mine.py", {}, "'mine.py' contains NUL bytes: submit source text"),
        (b"def f(:\n", "mine.py", {}, "mine.py, line 1: invalid syntax: `def f(:` — fix it and submit again"),
        (GOOD, "dir/mine.py", {}, "the file name 'dir/mine.py' cannot be used: one line of printable"),
        (
            GOOD,
            "mine.py",
            {"mode": "fast"},
            "unknown mode 'fast': expected one of test, benchmark, leaderboard, profile",
        ),
    ],
    ids=[
        "suffix",
        "too large",
        "declared too large",
        "empty",
        "blank",
        "latin-1",
        "binary",
        "NUL",
        "syntax",
        "slash",
        "mode",
    ],
)
def test_each_refusal_names_the_users_file_and_what_to_fix(
    data: bytes, file_name: str, options: dict[str, object], message: str
) -> None:
    assert refusal(data, file_name, **options).startswith(message)


def test_too_large_is_its_own_error_for_the_apis_413_and_checked_before_decoding() -> None:
    with pytest.raises(TooLargeError):
        take_upload(b"\xff" * 1001, "mine.py", max_bytes=1000)  # binary too: the size is what it is told
    with pytest.raises(SubmissionError) as not_text:
        take_upload(b"\xff" * 10, "mine.py", max_bytes=1000)
    assert not isinstance(not_text.value, TooLargeError)


def test_the_remote_client_checks_without_a_size_limit() -> None:
    assert take_upload(b"#" * 10_000, "mine.py", max_bytes=None).code == "#" * 10_000


def test_the_suffix_comes_from_the_table_keyed_by_language(monkeypatch: pytest.MonkeyPatch) -> None:
    assert language("py").suffixes == (".py",)
    assert language("zig") == Language("zig", (".zig",))  # not in the table: .<lang>, no source check
    take_upload(b"anything at all\n", "k.zig", max_bytes=100, lang="zig")
    monkeypatch.setitem(LANGUAGES, "cu", Language("CUDA", (".cu", ".cuh")))
    take_upload(b"__global__ void k() {}\n", "k.CU", max_bytes=100, lang="cu")
    assert refusal(GOOD, "k.py", lang="cu").startswith(
        "'k.py' is not a CUDA file: this task takes a .cu or .cuh file; if it holds CUDA source, rename it "
        "to 'k.cu'"
    )


def test_a_cuda_task_takes_cu_source_and_refuses_python_with_its_line() -> None:
    cuda = b'#include "task.h"\n__global__ void k() {}\n'
    assert take_upload(cuda, "kernel.cuh", max_bytes=100, lang="cu").code == cuda.decode()
    assert refusal(b"// a kernel\nimport torch\n", "k.cu", lang="cu") == (
        "'k.cu', line 2: this looks like Python (`import torch`), but this task takes CUDA C++ source — "
        "fix it and submit again; nothing was queued"
    )
    assert "this task takes a .cu or .cuh file" in refusal(cuda, "k.cpp", lang="cu")


def test_the_default_gpu_is_the_boards_only_one() -> None:
    assert gpu_for_board(None, "b", ["H100"]) == "H100"
    assert gpu_for_board("L4", "b", ["H100"]) == "L4"  # asked for: the service checks the board ranks it
    with pytest.raises(UserError, match=r"^give a GPU type: leaderboard b ranks H100, L4$"):
        gpu_for_board(None, "b", ["H100", "L4"])
    with pytest.raises(UserError, match=r"^leaderboard b ranks no GPU type yet \(an admin gives it some\)$"):
        gpu_for_board(None, "b", [])
