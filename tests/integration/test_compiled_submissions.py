"""Inline C++ (torch.utils.cpp_extension.load_inline, on the CPU) through the dev stack: Slurm over SSH,
the harness in its sandbox. It passes with a score its compile is no part of, and a compile error comes
back on the user's own line."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.config.tasks import load_task
from gateway.service.facade import Gateway
from gateway.service.model import SubmitRequest
from tests.conftest import PROBLEMS, solution

pytestmark = pytest.mark.integration
TYPO = "        z[i] = x[i] + y[i];\n"


async def test_inline_cpp_passes_untimed_compile_and_a_compile_error_names_the_users_line(
    gateway: Gateway,
) -> None:
    code = solution("vectoradd", "cpp_inline.py")
    assert code.count(TYPO) == 1
    broken = code.replace(TYPO, TYPO.replace(";", ""))  # a missing ';'
    line = code[: code.index(TYPO)].count("\n") + 1
    task, board = load_task(PROBLEMS / "vectoradd"), f"it-{uuid.uuid4().hex[:8]}"

    def request(text: str, file_name: str) -> SubmitRequest:
        return SubmitRequest(text, file_name, "ada", task, board, "alpha", "H100", "benchmark", admin=True)

    passed, failed = await asyncio.gather(
        gateway.submit(request(code, "cpp_inline.py")), gateway.submit(request(broken, "my_add.py"))
    )
    assert passed.passed and passed.result is not None, passed.error
    test_phase = passed.result.phases[0]
    assert test_phase.name == "test" and test_phase.duration_s > 3  # the import built the extension here
    # no timed call held the build: the slowest is far below the phase that compiled
    assert passed.score is not None and passed.score < test_phase.duration_s / 1000
    assert all(b.worst_ns / 1e9 < test_phase.duration_s / 100 for b in passed.result.benchmarks)

    assert not failed.passed
    message = failed.error or ""
    said = f"compiling the inline extension 'vectoradd_cpp' failed: my_add.py:{line}: error: expected"
    assert said in message, message
    assert "`z[i] = x[i] + y[i]`" in message and "main.cpp" not in message
