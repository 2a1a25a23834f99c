"""The sandbox around the process that imports submitted code (harness/usercode.py, or a task's own eval.py).

It runs in fresh Linux namespaces (user, mount, pid, network, ipc, uts): it sees the interpreter and its
packages read-only, its own task files and the harness read-only, a private writable /tmp, and the GPU
device nodes of its job; nothing of $HOME, the site's workdir, other bundles, other processes or the
network; and an environment holding only what the task needs. The runner, the key and the built-in
evaluator stay outside. When the sandboxed process ends, everything it started dies with its pid
namespace, and its /tmp (a tmpfs of that mount namespace) is gone.

Two tools make it: bubblewrap (``bwrap``, unprivileged user namespaces) and Apptainer/Singularity with the
equivalent flags. ``none`` runs the process as it is (a site whose admin allows unconfined runs).
Standard library only: this runs on the compute node.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import pwd
import re
import shutil
import site
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

KINDS = ("bubblewrap", "apptainer", "none")
ENV_VAR = "HARNESS_ISOLATION"  # how the runner tells the evaluator which sandbox to use (JSON)
# What the sandboxed process keeps of its parent's environment: the GPU its job was given and the CPU
# count Slurm allocated, never a token, a database URL or an SSH agent.
PASSED_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    "SLURM_CPUS_PER_TASK",
    "OMP_NUM_THREADS",
    "LANG",
    "TZ",
)
# What an environment module or a toolkit puts in the job's environment for libraries and compilers: passed
# in, and its folders bound read-only (unless they hold the account's home or the work folder).
SEARCH_PATH_ENV = ("LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH")
TOOLKIT_ENV = ("CUDA_HOME", "CUDA_PATH", "ROCM_PATH", "HIP_PATH")
SANDBOX_TMP = "/tmp"  # noqa: S108 (a private tmpfs inside the sandbox)
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
# Caches of compilers a kernel may use (torch inline extensions, Triton, nvcc's JIT): inside the private tmp.
SANDBOX_ENV = {
    "HOME": SANDBOX_TMP,
    "TMPDIR": SANDBOX_TMP,
    "XDG_CACHE_HOME": f"{SANDBOX_TMP}/.cache",
    "TRITON_CACHE_DIR": f"{SANDBOX_TMP}/.triton",
    "TORCH_EXTENSIONS_DIR": f"{SANDBOX_TMP}/torch_extensions",
    "CUDA_CACHE_PATH": f"{SANDBOX_TMP}/.nv",
    "PYTHONDONTWRITEBYTECODE": "1",
}
# The loader and the system libraries: read-only. /etc only for what a dynamic loader and libc read.
SYSTEM_PATHS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/opt/conda")
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/OpenCL",
    "/etc/vulkan",
)
NVIDIA_CONTROL = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")


class SandboxError(Exception):
    """The sandbox cannot be made here (its tool is missing, a path is wrong); the message says the fix."""


@dataclass(frozen=True)
class Isolation:
    """A site's choice (its YAML's ``isolation:``), as the runner receives it from the job script."""

    kind: str = "bubblewrap"
    command: str | None = None  # bwrap / apptainer, found on PATH when None
    image: str | None = None  # Apptainer: the image (.sif or a sandbox folder) holding python and torch
    python: str | None = None  # Apptainer: the interpreter inside the image (default python3)
    binds: tuple[str, ...] = field(default_factory=tuple)  # more read-only paths (a CUDA or a conda tree)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SandboxError(f"unknown isolation {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.kind == "apptainer" and not self.image:
            raise SandboxError("isolation apptainer needs an image (a .sif file with python and torch)")

    @property
    def confined(self) -> bool:
        return self.kind != "none"

    def to_env(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_env(cls, value: str | None) -> Isolation:
        """The evaluator's view: no variable means no sandbox (a runner that asked for none)."""
        if not value:
            return cls("none")
        data = json.loads(value)
        return cls(
            kind=str(data["kind"]),
            command=data.get("command"),
            image=data.get("image"),
            python=data.get("python"),
            binds=tuple(data.get("binds") or ()),
        )

    def tool(self) -> str:
        """The sandbox tool's path; SandboxError says how to get it when it is missing."""
        if self.command:
            names = [self.command]
        else:
            names = ["bwrap"] if self.kind == "bubblewrap" else ["apptainer", "singularity"]
        for name in names:
            found = shutil.which(name)
            if found is not None:
                return found
        package = "bubblewrap (apt install bubblewrap)" if self.kind == "bubblewrap" else "Apptainer"
        raise SandboxError(
            f"isolation {self.kind}: {names[0]} is not on this node's PATH ({os.environ.get('PATH', '')}); "
            f"install {package}, or name its path in the site's isolation.command"
        )


def sandboxed_env(extra: dict[str, str], toolchain: list[str], scratch: str = SANDBOX_TMP) -> dict[str, str]:
    """The whole environment of the sandboxed process; ``scratch`` is its private writable folder. The
    job's search paths keep only the ``toolchain`` folders the sandbox binds (``toolchain_paths``)."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    allowed = set(toolchain)
    for name in SEARCH_PATH_ENV:
        kept = [d for d in os.environ.get(name, "").split(":") if d in allowed]
        if kept:
            env[name] = ":".join(kept)
    for name in TOOLKIT_ENV:
        if os.environ.get(name) in allowed:
            env[name] = os.environ[name]
    job_path = [d for d in os.environ.get("PATH", "").split(":") if d in allowed]
    env["PATH"] = ":".join([str(Path(sys.executable).parent), *job_path, SYSTEM_PATH])
    own = {name: value.replace(SANDBOX_TMP, scratch, 1) for name, value in SANDBOX_ENV.items()}
    return env | own | extra


def toolchain_paths(protected: tuple[str, ...] = ()) -> list[str]:
    """Folders the job's environment names for libraries and compilers (an environment module's CUDA or
    compiler, a conda tree), outside the system paths, that neither hold nor lie in the account's home,
    the work folder or ``protected``."""
    guarded = (_home(), *protected)
    named = [d for name in (*SEARCH_PATH_ENV, "PATH") for d in os.environ.get(name, "").split(":")]
    named += [os.environ.get(name, "") for name in TOOLKIT_ENV]
    return sorted(
        {
            d
            for d in named
            if os.path.isabs(d)
            and os.path.isdir(d)
            and not _under(d, SYSTEM_PATHS)
            and not any(_under(d, (g,)) or _under(g, (d,)) for g in guarded if g)
        }
    )


def python_paths() -> list[str]:
    """Every folder the interpreter and its packages live in, outside the system paths."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    candidates.add(str(Path(sys.executable).parent))
    candidates.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    candidates.update(site.getsitepackages())  # never sys.path itself: it holds the bundle and task
    return sorted(p for p in candidates if os.path.isdir(p) and not _under(p, SYSTEM_PATHS))


def gpu_device_nodes(dev: str = "/dev") -> list[str]:
    """The GPU device nodes this job may use, under ``dev``: a GPU's own node only when it opens (Slurm's
    cgroup lets a job open the GPUs of its allocation alone), NVIDIA's control nodes, and AMD's kfd (the
    compute interface every AMD GPU shares) with the job's render and card nodes under dri/."""
    nodes = [f"{dev}{path[len('/dev') :]}" for path in NVIDIA_CONTROL]
    nodes = [path for path in nodes if os.path.exists(path)]
    if os.path.isdir(f"{dev}/nvidia-caps"):
        nodes.append(f"{dev}/nvidia-caps")
    for path in sorted(glob.glob(f"{dev}/nvidia[0-9]*")):
        if re.fullmatch(r"nvidia\d+", os.path.basename(path)) and _opens(path):
            nodes.append(path)
    if os.path.exists(f"{dev}/kfd"):
        nodes.append(f"{dev}/kfd")
        render, cards = (sorted(glob.glob(f"{dev}/dri/{kind}[0-9]*")) for kind in ("renderD", "card"))
        for path in [*render, *cards]:
            if re.fullmatch(r"(renderD|card)\d+", os.path.basename(path)) and _opens(path):
                nodes.append(path)
    return nodes


def wrap(
    isolation: Isolation,
    argv: list[str],
    *,
    readable: list[str],
    cwd: str,
    env: dict[str, str],
    scratch: str | None = None,
    protected: tuple[str, ...] = (),
    writable: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) that run ``argv`` confined: ``readable`` are the folders it may read (its task
    and the harness), ``cwd`` its working folder, ``env`` what it needs beyond the sandbox's own,
    ``protected`` folders no bind may hold or lie in (the work folder of every bundle). Without a sandbox
    (``none``) the process gets ``scratch`` (a private folder the caller made) as its HOME and temporary
    folder instead of a private /tmp. ``writable`` are folders it may write (an Nsight Compute report's).
    """
    toolchain = toolchain_paths(protected)
    if isolation.kind == "none":
        if scratch is None:
            raise SandboxError("an unconfined process needs a private scratch folder")
        return argv, sandboxed_env(env, toolchain, scratch)
    full_env = sandboxed_env(env, toolchain)
    binds = [*toolchain, *isolation.binds]
    tool = isolation.tool()
    if isolation.kind == "bubblewrap":
        # no user namespaces of its own inside (bubblewrap >= 0.8): the kernel's namespace code, the
        # usual ground of local privilege escalations, stays out of its reach
        nested = ["--disable-userns"] if _supports(tool, "--disable-userns") else []
        args = bubblewrap_args(binds, readable, cwd, full_env, writable)
        return [tool, *nested, *args, "--", *argv], {}
    args = apptainer_args(isolation, binds, readable, cwd, full_env, writable)
    return [tool, *args, *argv], {"PATH": SYSTEM_PATH}


def bubblewrap_args(
    binds: list[str], readable: list[str], cwd: str, env: dict[str, str], writable: tuple[str, ...] = ()
) -> list[str]:
    args = [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",  # the evaluator gone, the sandbox goes
        "--new-session",  # no TIOCSTI into a terminal outside
        "--hostname",
        "sandbox",
    ]
    # the private /tmp first: what is bound later (an interpreter or a task in a temporary folder) stays
    # visible on top of it
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP, "--tmpfs", "/dev/shm"]  # noqa: S108
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in [*ETC_FILES, *python_paths(), *binds]:
        args += ["--ro-bind-try", path, path]
    args += ["--ro-bind-try", "/sys", "/sys"]
    for node in gpu_device_nodes():
        args += ["--dev-bind", node, node]
    for path in readable:
        args += ["--ro-bind", path, path]
    for path in writable:
        args += ["--bind", path, path]
    args += ["--remount-ro", "/", "--chdir", cwd, "--clearenv"]
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    return args


def apptainer_args(
    isolation: Isolation,
    binds: list[str],
    readable: list[str],
    cwd: str,
    env: dict[str, str],
    writable: tuple[str, ...] = (),
) -> list[str]:
    """``apptainer exec`` with the same boundary: contained file system, no home, clean environment, its
    own pid/ipc/network namespaces with no network, the GPU libraries and nodes of --nv/--rocm."""
    args = ["exec", "--containall", "--cleanenv", "--no-home", "--net", "--network", "none"]
    args += ["--uts", "--hostname", "sandbox", "--writable-tmpfs", "--pwd", cwd]
    nodes = gpu_device_nodes()
    if any(node.startswith("/dev/nvidia") for node in nodes):
        args.append("--nv")
    if "/dev/kfd" in nodes:  # --rocm: ROCm's libraries and its device nodes
        args.append("--rocm")
    for path in [*readable, *binds]:
        args += ["--bind", f"{path}:{path}:ro"]
    for path in writable:
        args += ["--bind", f"{path}:{path}:rw"]
    for name, value in sorted(env.items()):
        if name != "PATH":
            args += ["--env", f"{name}={value}"]
    assert isolation.image is not None
    return [*args, isolation.image]


def module_command(python: str, bundle: str, module: str, args: list[str], *, isolated: bool) -> list[str]:
    """Start ``module``'s main(argv) from the bundle's harness copy. ``isolated`` (-I): no user
    site-packages, no PYTHON* variables, no script folder on sys.path, for the trusted processes; inside a
    sandbox (-s -E) the working folder stays on sys.path, as a task's own evaluator expects."""
    flags = ["-B", "-I"] if isolated else ["-B", "-s", "-E"]  # -B: no .pyc left in the bundle
    # ended by os._exit: no interpreter teardown (with torch loaded it takes a second or more of the run's
    # time) and no atexit handler a submission registered
    code = (
        f"import os, sys; sys.path.insert(0, sys.argv.pop(1)); from {module} import main; "
        "code = main(sys.argv); sys.stdout.flush(); sys.stderr.flush(); os._exit(code or 0)"
    )
    return [python, *flags, "-c", code, bundle, *args]


def interpreter(isolation: Isolation) -> str:
    """The python that runs inside the sandbox: this one, except in an Apptainer image."""
    if isolation.kind == "apptainer":
        return isolation.python or "python3"
    return sys.executable


@functools.cache
def _supports(tool: str, option: str) -> bool:
    try:
        done = subprocess.run([tool, "--help"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in done.stdout


def _home() -> str:
    """The account's home as the system knows it (HOME itself may already point at a scratch folder)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return os.path.expanduser("~")


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _opens(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        return True
    except OSError:
        return False


def may_bind(path: str, protected: tuple[str, ...] = ()) -> bool:
    """Whether a toolkit's folder (a CUDA toolkit a compile needs) may be bound into a sandbox: it
    neither holds nor lies in the account's home, the work folder or ``protected``."""
    guarded = (_home(), *protected)
    return not any(_under(path, (g,)) or _under(g, (path,)) for g in guarded if g)


def compiler_caches(cache: str) -> dict[str, str]:
    """The environment that puts torch's inline extensions and Triton's kernels in ``cache``, the run's
    own folder (bound writable into each of its sandboxes): built once per run, whichever process of it
    (a phase, the Nsight Compute pass) loads the submission again."""
    return {"TORCH_EXTENSIONS_DIR": f"{cache}/torch_extensions", "TRITON_CACHE_DIR": f"{cache}/triton"}
