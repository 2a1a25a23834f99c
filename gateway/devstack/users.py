"""The non-root login user ``gwrun``: home in the state folder, SSH key login, work folders, a torch venv."""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

from gateway.devstack.errors import DevStackError
from gateway.devstack.paths import RUN_USER, SITES, Paths
from gateway.devstack.proc import chown, run, say, user_env

SYSTEM_PYTHON = "/usr/bin/python3.11"
TORCH = "torch==2.13.0"
NUMPY = "numpy"  # torch warns on every import without it
NINJA = "ninja"  # torch.utils.cpp_extension.load_inline builds with it (inline C++/CUDA submissions)
WHEELS = Path("/opt/wheels")


def ensure_user(paths: Paths) -> str:
    """Create or fix up the account; return what was done."""
    said = []
    try:
        entry = pwd.getpwnam(RUN_USER)
    except KeyError:
        run(["useradd", "--no-create-home", "--home-dir", str(paths.home), "--shell", "/bin/bash", RUN_USER])
        entry = pwd.getpwnam(RUN_USER)
        said.append("created")
    if Path(entry.pw_dir) != paths.home:
        run(["usermod", "--home", str(paths.home), RUN_USER])
        said.append(f"home moved to {paths.home}")
    shadow = Path("/etc/shadow").read_text()
    locked = any(
        line.split(":")[1].startswith("!") for line in shadow.splitlines() if line.startswith(f"{RUN_USER}:")
    )
    if locked:
        # useradd leaves the account locked: with UsePAM no, sshd then refuses even keys
        run(["usermod", "-p", "*", RUN_USER])
        said.append("unlocked for key login")
    paths.home.mkdir(exist_ok=True)
    paths.home.chmod(0o755)
    chown(paths.home, RUN_USER)
    ssh = paths.home / ".ssh"
    ssh.mkdir(exist_ok=True)
    ssh.chmod(0o700)
    chown(ssh, RUN_USER)
    pub = Path(str(paths.client_key) + ".pub").read_text()
    keys = ssh / "authorized_keys"
    if not keys.exists() or keys.read_text() != pub:
        keys.write_text(pub)
    keys.chmod(0o600)
    chown(keys, RUN_USER)
    for site in SITES:
        work = paths.home / f"{site}-runs"
        work.mkdir(exist_ok=True)
        chown(work, RUN_USER)
    return ", ".join(said) or "ready"


def venv_ready(paths: Paths) -> bool:
    """Cheap check (no import): the venv's python exists and torch is installed in it."""
    python = paths.venv / "bin" / "python"
    return python.exists() and any(paths.venv.glob("lib/python3*/site-packages/torch/__init__.py"))


def _torch_imports(paths: Paths) -> bool:
    python = paths.venv / "bin" / "python"
    if not python.exists():
        return False
    done = run(
        [str(python), "-c", "import torch, numpy, ninja"],
        user=RUN_USER,
        env=user_env(RUN_USER),
        check=False,
        timeout=120,
    )
    return done.returncode == 0


def ensure_venv(paths: Paths) -> str:
    """Create ~gwrun/venv as gwrun and install torch (CPU wheel) and ninja into it; skip when they import."""
    if _torch_imports(paths):
        return "torch already importable"
    env = user_env(RUN_USER)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    if not (paths.venv / "bin" / "python").exists():
        say(f"venv: creating {paths.venv} as {RUN_USER}")
        run(
            [SYSTEM_PYTHON, "-m", "venv", str(paths.venv)],
            user=RUN_USER,
            env=env,
            cwd=paths.home,
            timeout=300,
        )
    links = ["--find-links", str(WHEELS)] if WHEELS.is_dir() else []
    argv = [str(paths.venv / "bin" / "pip"), "install", "--progress-bar", "off", *links, TORCH, NUMPY, NINJA]
    say(f"venv: pip install {TORCH} as {RUN_USER} (the slow step, ~40 s)")
    entry = pwd.getpwnam(RUN_USER)
    lines: list[str] = []
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=paths.home,
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith(("Collecting", "Installing", "Successfully", "ERROR")):
                say(f"  pip: {line.rstrip()}")
        code = proc.wait()
    if code != 0:
        tail = "\n".join(lines[-25:])
        raise DevStackError(f"pip install {TORCH} into {paths.venv} failed ({code}):\n{tail}")
    if not _torch_imports(paths):
        raise DevStackError(f"torch was installed into {paths.venv} but does not import")
    return "torch installed"


def uid() -> int | None:
    try:
        return pwd.getpwnam(RUN_USER).pw_uid
    except KeyError:
        return None
