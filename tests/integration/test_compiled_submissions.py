"""Inline C++ (torch.utils.cpp_extension.load_inline, on the CPU) through the dev stack: Slurm over SSH,
the harness in its sandbox. The example solution passes with a score its compile is no part of, and a
compile error comes back on the user's own line."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.config.tasks import load_task
from gateway.service.facade import Gateway
from gateway.service.model import SubmitRequest
from tests.conftest import PROBLEMS, solution

pytestmark = pytest.mark.integration
# without torch's headers (no_implicit_headers) its compile fails in a second, not a minute
BROKEN = '''from torch.utils.cpp_extension import load_inline

SOURCE = """
float add(float x, float y) {
    return x + y
}
"""
load_inline("adder", cpp_sources=SOURCE, no_implicit_headers=True, is_python_module=False)


def custom_kernel(data):
    return data[0] + data[1]
'''


async def test_inline_cpp_passes_untimed_compile_and_a_compile_error_names_the_users_line(
    gateway: Gateway,
) -> None:
    task, board = load_task(PROBLEMS / "vectoradd"), f"it-{uuid.uuid4().hex[:8]}"

    def request(text: str, file_name: str) -> SubmitRequest:
        return SubmitRequest(text, file_name, "ada", task, board, "alpha", "H100", "benchmark", admin=True)

    passed, failed = await asyncio.gather(
        gateway.submit(request(solution("vectoradd", "cpp_inline.py"), "cpp_inline.py")),
        gateway.submit(request(BROKEN, "my_add.py")),
    )
    assert passed.passed and passed.result is not None, passed.error
    test_phase = passed.result.phases[0]
    assert test_phase.name == "test" and test_phase.duration_s > 3  # the import built the extension here
    # no timed call held the build: the slowest is far below the phase that compiled
    assert passed.score is not None and passed.score < test_phase.duration_s / 1000
    assert all(b.worst_ns / 1e9 < test_phase.duration_s / 100 for b in passed.result.benchmarks)

    assert not failed.passed
    message = failed.error or ""
    assert "compiling the inline extension 'adder' failed: my_add.py:5: error: expected" in message, message
    assert "`return x + y`" in message and "main.cpp" not in message
