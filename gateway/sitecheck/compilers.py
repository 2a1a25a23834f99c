"""The site check's compilers step: what a compiled submission would find in the job's environment (the
site's setup lines run first, on the login node): nvcc for ``lang: cu`` tasks and inline CUDA, hipcc or
amdclang++ on AMD sites, g++ and ninja for torch's inline extensions. It says what it found; a site that
runs only Python kernels needs none of them, so a missing compiler is reported, never a failure."""

from __future__ import annotations

import re

from gateway.config.sites import SiteConfig
from gateway.running.transport import Transport
from gateway.sitecheck.step import Step

KEY, TITLE = "compilers", "compilers"
# ``tool|path|first lines of its --version`` per compiler; nvcc found as the harness finds it
# (harness/compile.py: $CUDA_HOME/bin, the PATH, /usr/local/cuda), ninja next to the site's python first
COMPILERS_SCRIPT = r"""
set +e
found() {
  [ -n "$2" ] && [ -x "$2" ] || return 0
  printf '%s|%s|%s\n' "$1" "$2" "$("$2" --version 2>&1 | head -n 4 | tr '\n' ' ')"
}
nvcc=""
for home in "$CUDA_HOME" "$CUDA_PATH"; do
  [ -n "$home" ] && [ -x "$home/bin/nvcc" ] && { nvcc="$home/bin/nvcc"; break; }
done
[ -z "$nvcc" ] && nvcc="$(command -v nvcc)"
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
found nvcc "$nvcc"
found hipcc "$(command -v hipcc)"
found amdclang++ "$(command -v amdclang++)"
found g++ "$(command -v g++)"
python="$(command -v "$1")"
ninja="$(dirname "${python:-/nonexistent/x}")/ninja"
[ -x "$ninja" ] || ninja="$(command -v ninja)"
found ninja "$ninja"
exit 0
"""
VERSIONS = {
    "nvcc": r"release (\d+\.\d+)",
    "hipcc": r"HIP version: (\d+(?:\.\d+)+)",
    "amdclang++": r"clang version (\d+(?:\.\d+)+)",
    "g++": r"(\d+\.\d+\.\d+)",
    "ninja": r"(\d+\.\d+(?:\.\d+)?)",
}


def parse_compilers(stdout: str) -> dict[str, str]:
    """``{tool: version}`` of each compiler the script found (``?`` when its version reads otherwise)."""
    found = {}
    for line in stdout.splitlines():
        tool, _, rest = line.partition("|")
        if tool in VERSIONS:
            match = re.search(VERSIONS[tool], rest.partition("|")[2])
            found[tool] = match.group(1) if match else "?"
    return found


async def check_compilers(site: SiteConfig, transport: Transport) -> Step:
    """One line naming each compiler found with its version, and what is missing for which kind of task."""
    script = "\n".join([*site.setup, COMPILERS_SCRIPT])
    done = await transport.run(["bash", "-c", script, "gw-check", site.python], timeout=60, check=False)
    found = parse_compilers(done.stdout)
    if not found:
        none = "none found (no nvcc, hipcc, g++ or ninja): only Python kernels run here"
        return Step(KEY, TITLE, "PASS", none)
    detail = ", ".join(f"{tool} {version}" for tool, version in found.items())
    missing = []
    if "nvcc" not in found and "hipcc" not in found:
        missing.append("no nvcc or hipcc: CUDA tasks (lang: cu) and inline CUDA cannot compile")
    if "g++" not in found or "ninja" not in found:
        missing.append("inline C++/CUDA (load_inline) needs g++ and ninja (pip install ninja for the job)")
    return Step(KEY, TITLE, "PASS", "; ".join([detail, *missing]))
