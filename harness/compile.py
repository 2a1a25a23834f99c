"""Compiled submissions: a ``lang: cu`` task built with the node's nvcc, and the errors of a ``lang: py``
submission's inline C++/CUDA (torch.utils.cpp_extension.load_inline) traced back to its own lines.

nvcc runs in the same sandbox as user code (the preprocessor reads what an ``#include`` names, and a
``constexpr`` loop is code that runs), read-only but for the folder it writes the program to, under its own
time limit (``timeouts.compile`` in spec.json, else ``COMPILE_TIMEOUT_S``), its output capped. The program
it builds is the task's evaluator: it runs once per phase as a task's own eval.py does (GPU MODE's
interface: ``<program> <mode> <tests-file>``, the key/value lines on ``POPCORN_FD``).

Standard library only: this runs on the compute node (the runner) and in the user-code process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.process import _Drain, kill_group
from harness.sandbox import Isolation, may_bind, wrap

COMPILE_TIMEOUT_S = 300.0
OUTPUT_LIMIT = 64 * 1024  # bytes of the compiler's output kept (the head: the first errors matter)
ERROR_CHARS = 3000  # of the compiler's messages in the run's error
PROGRAM = "evaluator"  # the built program's name in its folder
NVCC_FLAGS = ["-O3", "-std=c++20", "--expt-relaxed-constexpr", "-lineinfo", "-Xcompiler=-fmax-errors=20"]
# "a" targets (sm_90a, sm_100a): the architecture-specific instructions (wgmma, tcgen05) of the GPU it runs on
ARCH_SPECIFIC_FROM = 90


def find_nvcc() -> str | None:
    """The site's nvcc: ``$CUDA_HOME/bin`` (or ``CUDA_PATH``), else the PATH, else /usr/local/cuda."""
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(variable)
        if home and os.access(os.path.join(home, "bin", "nvcc"), os.X_OK):
            return os.path.join(home, "bin", "nvcc")
    default = "/usr/local/cuda/bin/nvcc"
    found = shutil.which("nvcc")
    if found is not None and os.path.realpath(found).endswith("/bin/nvcc"):
        return found
    return default if os.access(default, os.X_OK) else found


def toolkit_root(nvcc: str) -> str:
    """The CUDA toolkit's folder (``<root>/bin/nvcc``; a wrapper script elsewhere: its own folder)."""
    real = Path(os.path.realpath(nvcc))
    return str(real.parent.parent if real.parent.name == "bin" else real.parent)


def gpu_arch() -> str | None:
    """``-arch`` for the node's first GPU (``sm_90a`` on an H100), or None without one (nvcc's default)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run(
            [smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        major, minor = done.stdout.split()[0].split(".")
        number = int(major) * 10 + int(minor)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return f"sm_{number}{'a' if number >= ARCH_SPECIFIC_FROM else ''}"


def cuda_sources(task: Path, spec: dict[str, Any]) -> list[Path]:
    """What one program is built from: the task's evaluator (``main``) and the submission, or with no
    ``main`` every ``.cu`` file of the task (KernelBot's ``sources``)."""
    submission = task / Path(str(spec.get("submission") or "submission.cu")).name
    main = spec.get("main")
    if main:
        return [task / main, submission]
    return sorted(task.glob("*.cu"))


@dataclass(frozen=True)
class Compiled:
    """A build's outcome: the program (None when it failed), why not, and how long it took."""

    program: Path | None
    error: str | None
    duration_s: float
    output: str = ""


def compile_cuda(bundle: Path, spec: dict[str, Any], folder: Path, isolation: Isolation) -> Compiled:
    """Build the task's program into ``folder`` (made here, the one folder nvcc may write) with the
    site's nvcc, in the sandbox, under the compile time limit. A failure's error holds the compiler's
    first messages, with the bundle's paths as the caller will show them."""
    started = time.monotonic()
    nvcc = find_nvcc()
    if nvcc is None:
        return Compiled(None, "this task compiles CUDA, but the node has no nvcc (set CUDA_HOME, or load "
                        "the CUDA module in the site's setup lines)", 0.0)  # fmt: skip
    root = toolkit_root(nvcc)
    protected = (str(bundle.parent),)  # the work folder: every run's bundle
    if not may_bind(root, protected):
        return Compiled(None, f"the CUDA toolkit at {root} lies in the account's home or the work "
                        "folder: the sandbox will not bind it; install it elsewhere", 0.0)  # fmt: skip
    folder.mkdir(mode=0o700)
    task = bundle / "task"
    program = folder / PROGRAM
    arch = gpu_arch()
    argv = [nvcc, *NVCC_FLAGS, *([f"-arch={arch}"] if arch else []), "-I", str(task), "-o", str(program)]
    argv += [str(source) for source in cuda_sources(task, spec)]
    scratch = folder / "scratch"
    scratch.mkdir()
    argv, env = wrap(
        isolation,
        argv,
        readable=[str(task), root],
        cwd=str(task),
        env={"CUDA_HOME": root},
        scratch=str(scratch),
        protected=protected,
        writable=(str(folder),),
    )
    limit = float((spec.get("timeouts") or {}).get("compile", COMPILE_TIMEOUT_S))
    code, output, timed_out = _run(argv, env, str(task), limit)
    shutil.rmtree(scratch, ignore_errors=True)
    duration = round(time.monotonic() - started, 3)
    if timed_out:
        return Compiled(None, f"compiling took longer than its limit of {limit:.0f} s", duration, output)
    if code != 0 or not program.is_file():
        messages = _first_messages(output) or f"nvcc exited with {code} and said nothing"
        return Compiled(None, f"compile error:\n{messages}", duration, output)
    return Compiled(program, None, duration, output)


def _run(argv: list[str], env: dict[str, str], cwd: str, limit: float) -> tuple[int | None, str, bool]:
    """(exit code, output with its head kept, timed out) of the compiler, its whole group killed at the
    limit."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    drain = _Drain(os.dup(proc.stdout.fileno()), OUTPUT_LIMIT, keep_tail=False)
    proc.stdout.close()
    drain.start()
    try:
        code: int | None = proc.wait(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        proc.wait()
        code, timed_out = None, True
    kill_group(proc.pid)  # anything it left behind
    drain.join(timeout=5)
    return code, drain.text(), timed_out


def _first_messages(output: str) -> str:
    """The compiler's messages without its command lines, cut at ``ERROR_CHARS``."""
    lines = [line for line in output.splitlines() if line.strip()]
    text = "\n".join(lines)
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS] + "\n[… more errors cut]"


# -- load_inline's errors, on the user's own lines ---------------------------------------------------

# gcc/clang/nvcc-host ("main.cpp:5:5: error: ...") and nvcc's front end ("cuda.cu(5): error: ...")
_INLINE_ERROR = re.compile(
    r"^(?P<path>/\S*?/(?P<file>main\.cpp|cuda\.cu))(?::(?P<line>\d+)(?::\d+)?|\((?P<eline>\d+)\)):\s*"
    r"(?:fatal )?error:\s*(?P<message>.*)$",
    re.M,
)
MAX_INLINE_ERRORS = 5


def is_inline_build_error(text: str) -> bool:
    return text.startswith("Error building extension")


def inline_build_error(text: str, source: str, shown_name: str) -> str:
    """A load_inline build failure (torch's ``Error building extension 'x': <ninja's log>``) as the user's
    own lines: each ``main.cpp:LINE: error`` whose generated line's text is found once in ``source`` (the
    submission) becomes ``kernel.py:LINE``, else it stays the generated file's line with that text."""
    found = []
    for match in _INLINE_ERROR.finditer(text):
        line = int(match.group("line") or match.group("eline"))
        snippet = _generated_line(match.group("path"), line)
        where = f"{match.group('file')}:{line} (generated)"
        if snippet:
            hits = [i for i, text_line in enumerate(source.splitlines(), 1) if snippet in text_line]
            if len(hits) == 1:
                where = f"{shown_name}:{hits[0]}"
        shown = f": `{snippet[:120]}`" if snippet else ""
        found.append(f"{where}: error: {match.group('message').strip()[:300]}{shown}")
        if len(found) == MAX_INLINE_ERRORS:
            break
    name = text.split(":", 1)[0].removeprefix("Error building extension").strip()
    if not found:
        tail = " ".join(text.split())[-1500:]
        return f"compiling the inline extension {name} failed: {tail}"
    return f"compiling the inline extension {name} failed: " + " | ".join(found)


def _generated_line(path: str, line: int) -> str:
    """The stripped text of ``path``'s ``line`` (the source torch generated in the build folder)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as generated:
            for number, text in enumerate(generated, 1):
                if number == line:
                    return text.strip()
    except OSError:
        pass
    return ""
