"""The ranks of a multi-GPU run: ``python -m harness.ranks <world-size> <request-fd> <reply-fd> ...``.

The evaluator's UserCodeClient starts this inside ONE sandbox for a task of more than one GPU per run, with
a pair of pipes per rank. It starts ``harness.usercode`` once per rank on its pair, with torch.distributed's
variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR 127.0.0.1 and a free port): all ranks share the
sandbox's network namespace, where only the loopback is up, and its /dev/shm, which NCCL and RCCL use
between the GPUs of one node. Each rank's process joins the process group itself (harness/usercode.py:
nccl on CUDA, which is RCCL on ROCm; gloo on a CPU).

It decides nothing and is as untrusted as the ranks it starts: the evaluator outside checks every rank's
output and times each request by its own clock. When one rank ends badly the others are stopped, since
they would wait for it in their next collective. Standard library only.
"""

from __future__ import annotations

import inspect
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.sandbox import module_command

MAX_WORLD_SIZE = 64


def rank_inputs(generate_input: Any, rank: int, world_size: int, /, **case: Any) -> Any:
    """A rank's input of ``case``: the run's world size replaces a case's own ``world_size`` (a
    ``multi_gpu`` task's cases name it; the run has as many ranks as its largest)."""
    return generate_input(**(case | {"rank": rank, "world_size": world_size}))


def takes_rank(generate_input: Any) -> bool:
    """Whether a task's generate_input makes one rank's input (takes ``rank`` and ``world_size``, as
    reference-kernels' distributed tasks' do): only then does a run of several GPUs start several ranks."""
    try:
        parameters = inspect.signature(generate_input).parameters
    except (TypeError, ValueError):
        return False
    return {"rank", "world_size"} <= parameters.keys()


def free_port() -> int:
    """A TCP port free on the loopback now (the rendezvous of rank 0; the sandbox has no other network)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rank_env(rank: int, world_size: int, port: int) -> dict[str, str]:
    """torch.distributed's env:// variables for one rank of a single-node run."""
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def start_ranks(
    world_size: int, fds: list[int], python: str = sys.executable
) -> list[subprocess.Popen[bytes]]:
    """One ``harness.usercode`` process per rank on its own (request, reply) pipe pair in ``fds``."""
    bundle = str(Path(__file__).resolve().parent.parent)
    port = free_port()
    procs = []
    for rank in range(world_size):
        request_fd, reply_fd = fds[2 * rank], fds[2 * rank + 1]
        command = module_command(python, bundle, "harness.usercode", [str(request_fd), str(reply_fd)],
                                 isolated=False)  # fmt: skip
        env = dict(os.environ) | rank_env(rank, world_size, port)
        procs.append(subprocess.Popen(command, env=env, pass_fds=(request_fd, reply_fd)))
    for fd in fds:
        os.close(fd)  # each rank holds its own pair; the evaluator sees EOF when a rank's process is gone
    return procs


def wait_all(procs: list[subprocess.Popen[bytes]]) -> int:
    """Wait for every rank; the first that ends badly stops the others. The worst exit code."""
    worst = 0
    live = {proc.pid: proc for proc in procs}
    while live:
        pid, status = os.wait()
        proc = live.pop(pid, None)
        if proc is None:
            continue
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            worst = worst or (proc.returncode if proc.returncode > 0 else 128 - proc.returncode)
            for other in live.values():
                other.send_signal(signal.SIGKILL)
    return worst


def main(argv: list[str]) -> int:
    try:
        world_size = int(argv[1])
        fds = [int(fd) for fd in argv[2:]]
    except (IndexError, ValueError):
        world_size, fds = 0, []
    if not 2 <= world_size <= MAX_WORLD_SIZE or len(fds) != 2 * world_size:
        print("usage: python -m harness.ranks <world-size> <request-fd> <reply-fd> ...", file=sys.stderr)
        return 2
    return wait_all(start_ranks(world_size, fds))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
