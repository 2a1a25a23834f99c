"""The sandbox itself (harness/sandbox.py), as real bubblewrap processes: what a confined process can and
cannot reach. The same escapes through a real site are in tests/integration/test_isolation.py."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.devstack.proc import alive, cmdline
from harness.sandbox import Isolation, SandboxError, apptainer_args, module_command, wrap

BWRAP = Isolation("bubblewrap")
# The probe: runs the named attempt inside the sandbox and prints what came of it as one JSON line.
PROBE = r"""
import json, os, socket, sys
attempt, arg = sys.argv[1], sys.argv[2]
def outcome():
    if attempt == "read":
        return open(arg).read()
    if attempt == "list":
        return sorted(os.listdir(arg))
    if attempt == "write":
        os.makedirs(os.path.dirname(arg), exist_ok=True)
        with open(arg, "w") as f:
            f.write("planted")
        return "written"
    if attempt == "connect":
        host, port = arg.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=2) as conn:
            if conn.getsockname() == conn.getpeername():  # a loopback connect can meet itself: no service
                raise ConnectionRefusedError(111, "Connection refused: only a self-connection")
        return "connected"
    if attempt == "kill":
        os.kill(int(arg), 0)
        return "signalled"
    if attempt == "env":
        return os.environ.get(arg)
    if attempt == "pids":
        return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    if attempt == "interfaces":
        return sorted(name for _, name in socket.if_nameindex())
    if attempt == "spawn":
        import subprocess
        subprocess.Popen(["sleep", arg], start_new_session=True)
        return "spawned"
    if attempt == "userns":
        import subprocess
        return subprocess.run(["unshare", "-r", "id"], check=True, capture_output=True).stdout.decode()
    if attempt == "fd":
        os.write(int(arg), b"through the channel")
        return "written"
    raise SystemExit("unknown attempt " + attempt)
try:
    print(json.dumps({"ok": True, "value": outcome()}))
except Exception as exc:
    print(json.dumps({"ok": False, "error": type(exc).__name__ + ": " + str(exc)}))
"""


@pytest.fixture
def task(tmp_path: Path) -> Path:
    """A bundle with a sibling bundle next to it, as a site's workdir holds them."""
    bundle = tmp_path / "workdir" / "run-a"
    (bundle / "task").mkdir(parents=True)
    (bundle / "task" / "probe.py").write_text(PROBE)
    (bundle / "key").write_text("secret key of run a\n")
    (bundle / "spec.json").write_text('{"seed": 424242}')
    sibling = tmp_path / "workdir" / "run-b"
    sibling.mkdir()
    (sibling / "key").write_text("secret key of run b\n")
    return bundle / "task"


def confined(task: Path, attempt: str, arg: str, *, fds: tuple[int, ...] = ()) -> dict[str, object]:
    argv = [sys.executable, "-B", "-s", "-E", str(task / "probe.py"), attempt, arg]
    argv, env = wrap(BWRAP, argv, readable=[str(task)], cwd=str(task), env={})
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, pass_fds=fds)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_its_own_task_is_readable_and_nothing_else_of_the_workdir(task: Path) -> None:
    assert confined(task, "list", str(task)) == {"ok": True, "value": ["probe.py"]}
    bundle = task.parent
    assert not confined(task, "read", str(bundle / "key"))["ok"]
    assert not confined(task, "read", str(bundle / "spec.json"))["ok"]
    assert not confined(task, "read", str(bundle.parent / "run-b" / "key"))["ok"]
    listing = confined(task, "list", str(bundle.parent))
    assert listing["ok"] and listing["value"] == ["run-a"]  # only the path to its own task exists


def test_its_task_and_the_system_are_read_only(task: Path) -> None:
    written = confined(task, "write", str(task / "probe.py"))
    assert not written["ok"] and "Read-only" in str(written["error"])
    assert not confined(task, "write", "/usr/lib/planted.pth")["ok"]
    assert (task / "probe.py").read_text() == PROBE


def test_home_is_out_of_reach_and_nothing_lands_in_it(task: Path) -> None:
    home = Path.home()
    assert not confined(task, "list", str(home / ".ssh"))["ok"]
    target = home / ".local" / "lib" / f"planted-{secrets.token_hex(4)}.pth"
    assert not confined(task, "write", str(target))["ok"]
    assert not target.exists()


def test_tmp_is_private_writable_and_gone_afterwards(task: Path) -> None:
    name = f"/tmp/sandbox-{secrets.token_hex(4)}"
    assert confined(task, "write", f"{name}/file") == {"ok": True, "value": "written"}
    assert not Path(name).exists()


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP service on this machine's loopback, as PostgreSQL and sshd are on a node."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_no_network_not_even_this_machines_loopback(task: Path, listener: int) -> None:
    with socket.create_connection(("127.0.0.1", listener), timeout=2):
        pass  # reachable from outside
    reached = confined(task, "connect", f"127.0.0.1:{listener}")
    assert not reached["ok"] and "Connection refused" in str(reached["error"])
    assert confined(task, "interfaces", "-") == {"ok": True, "value": ["lo"]}


def test_other_processes_are_invisible_and_cannot_be_signalled(task: Path) -> None:
    pids = confined(task, "pids", "-")
    # its own pid namespace: bubblewrap's init, the probe, nothing of this machine's
    assert pids["ok"] and isinstance(pids["value"], list) and max(pids["value"]) <= 3
    signalled = confined(task, "kill", str(os.getppid()))
    assert not signalled["ok"] and "ProcessLookupError" in str(signalled["error"])


def test_the_environment_holds_only_what_the_task_needs(task: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://gateway:hunter2@db/gateway")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/agent.sock")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert confined(task, "env", "GATEWAY_DATABASE_URL") == {"ok": True, "value": None}
    assert confined(task, "env", "SSH_AUTH_SOCK") == {"ok": True, "value": None}
    assert confined(task, "env", "CUDA_VISIBLE_DEVICES") == {"ok": True, "value": "1"}
    assert confined(task, "env", "HOME") == {"ok": True, "value": "/tmp"}


def test_a_child_process_dies_with_the_sandbox(task: Path) -> None:
    seconds = str(5000 + secrets.randbelow(10**6))
    assert confined(task, "spawn", seconds) == {"ok": True, "value": "spawned"}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        # Any process on the machine may be listed, its argv in any bytes: cmdline() reads them leniently.
        sleeping = [
            int(p.name)
            for p in Path("/proc").glob("[0-9]*")
            if cmdline(int(p.name)) == ["sleep", seconds] and alive(int(p.name))
        ]
        if not sleeping:
            return
        time.sleep(0.1)
    pytest.fail("a process the sandboxed code started outlived it")


def test_no_user_namespace_of_its_own_inside(task: Path) -> None:
    nested = confined(task, "userns", "-")
    assert not nested["ok"] and "CalledProcessError" in str(nested["error"])


def test_descriptors_passed_in_reach_the_sandbox(task: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        assert confined(task, "fd", str(write_end), fds=(write_end,))["ok"]
        os.close(write_end)
        assert os.read(read_end, 100) == b"through the channel"
    finally:
        os.close(read_end)


def test_a_missing_tool_says_what_to_install() -> None:
    with pytest.raises(SandboxError, match="install bubblewrap"):
        Isolation("bubblewrap", command="/nonexistent/bwrap").tool()
    with pytest.raises(SandboxError, match="needs an image"):
        Isolation("apptainer")
    with pytest.raises(SandboxError, match="unknown isolation"):
        Isolation("chroot")


def test_apptainer_gets_the_equivalent_flags(tmp_path: Path) -> None:
    """Apptainer is not installable here (not in Debian 12): its command line is checked, not run."""
    args = apptainer_args(
        Isolation("apptainer", image="/images/torch.sif"),
        ["/opt/cuda"],
        [str(tmp_path)],
        str(tmp_path),
        {"HOME": "/tmp", "PATH": "/usr/bin"},
    )
    assert args[:2] == ["exec", "--containall"] and args[-1] == "/images/torch.sif"
    for flag in ("--cleanenv", "--no-home", "--net", "--writable-tmpfs"):
        assert flag in args
    assert args[args.index("--network") + 1] == "none"
    assert f"{tmp_path}:{tmp_path}:ro" in args and "/opt/cuda:/opt/cuda:ro" in args
    assert "HOME=/tmp" in args and not any(a.startswith("PATH=") for a in args)


def test_an_environment_modules_toolkit_is_bound_but_never_the_home_or_the_workdir(
    task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site's `module load cuda` puts a toolkit outside the system paths into LD_LIBRARY_PATH and PATH:
    the sandbox binds it and keeps it in the search paths; a folder in the account's home, or one holding
    the work folder, it leaves out of both."""
    toolkit = tmp_path / "sw" / "cuda" / "lib64"
    toolkit.mkdir(parents=True)
    (toolkit / "libfake.so").write_text("a library")
    home_lib = Path.home() / f".sandbox-test-{secrets.token_hex(4)}"
    home_lib.mkdir()
    try:
        workdir_parent = str(task.parent.parent.parent)  # holds the work folder: never bound
        monkeypatch.setenv("LD_LIBRARY_PATH", f"{toolkit}:{home_lib}:{workdir_parent}")
        monkeypatch.setenv("CUDA_HOME", str(toolkit.parent))
        workdir = (str(task.parent.parent),)
        argv = [sys.executable, "-B", "-s", "-E", str(task / "probe.py"), "env", "LD_LIBRARY_PATH"]
        argv, env = wrap(BWRAP, argv, readable=[str(task)], cwd=str(task), env={}, protected=workdir)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(done.stdout) == {"ok": True, "value": str(toolkit)}
        argv = [sys.executable, "-B", "-s", "-E", str(task / "probe.py"), "read", str(toolkit / "libfake.so")]
        argv, env = wrap(BWRAP, argv, readable=[str(task)], cwd=str(task), env={}, protected=workdir)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(done.stdout) == {"ok": True, "value": "a library"}
        assert str(home_lib) not in argv and workdir_parent not in argv
    finally:
        home_lib.rmdir()


def test_unconfined_still_gets_a_private_scratch_and_a_clean_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://x")
    argv, env = wrap(Isolation("none"), ["true"], readable=[], cwd=str(tmp_path), env={}, scratch="/s")
    assert argv == ["true"] and env["HOME"] == "/s" and env["TRITON_CACHE_DIR"] == "/s/.triton"
    assert "GATEWAY_DATABASE_URL" not in env
    with pytest.raises(SandboxError):
        wrap(Isolation("none"), ["true"], readable=[], cwd=str(tmp_path), env={})


def test_module_command_imports_the_bundles_harness(tmp_path: Path) -> None:
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "__init__.py").write_text("")
    (tmp_path / "harness" / "hello.py").write_text("def main(argv):\n    print(__file__, argv[1:])\n")
    argv = module_command(sys.executable, str(tmp_path), "harness.hello", ["x"], isolated=True)
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd="/")
    assert done.stdout.strip() == f"{tmp_path}/harness/hello.py ['x']"
