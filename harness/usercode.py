"""The untrusted side: ``python -m harness.usercode <request-fd> <reply-fd>``, started by the evaluator.

This is the only process that imports the submission. It generates an input for each request, calls
custom_kernel once and sends back the raw time of that call and, when asked, the output; it decides
nothing. Everything it uses to time is bound in ``serve``'s locals before the submission is imported, so
patching ``time``, ``torch.cuda.Event`` or this module afterwards changes nothing it measures; user code
that rewrites those locals' closure cells can, and is then outvoted by the evaluator's own clock.

The evaluator also runs a twin of this process that is never sent ``load``: it answers ``calibrate``
requests (the same path, the harness's no-op kernel) whose wall time is a timed request's fixed cost.

Of a multi-GPU task, one such process runs per rank (harness/ranks.py sets RANK, WORLD_SIZE and the
rendezvous): it joins the process group before anything else (nccl on a GPU, which is RCCL on ROCm; gloo
on a CPU), uses the GPU of its rank, and makes its inputs as ``generate_input(rank=, world_size=, **case)``.
"""

from __future__ import annotations

import datetime
import functools
import gc
import os
import sys
import threading
import time
import traceback
from typing import Any

from harness import wire
from harness.compile import inline_build_error, is_inline_build_error
from harness.protocol import SUBMISSION_FILE, shown_paths
from harness.ranks import rank_inputs

# threads whose code lives in these packages may outlive a call (torch and triton keep helper threads)
LIBRARY_THREADS = ("torch", "triton")


def user_error(exc: BaseException, task_dir: str, shown_name: str = SUBMISSION_FILE) -> str:
    """One line a competitor can act on: the exception and the frames of the task's own files, the
    submission's named ``shown_name`` (the user's own file name), none with the bundle's path."""
    submission = os.path.join(task_dir, SUBMISSION_FILE)  # where ``import submission`` finds it
    paths = [(submission, shown_name), (task_dir + os.sep, "")]

    def where(filename: str | None) -> str:
        path = os.path.abspath(filename or "?")
        return shown_name if path == submission else os.path.basename(path)

    if isinstance(exc, SyntaxError):
        text = (exc.text or "").strip()
        found = f"{where(exc.filename)}, line {exc.lineno}"
        return f"SyntaxError: {exc.msg} ({found}){': ' + text if text else ''}"
    message = shown_paths(f"{type(exc).__name__}: {exc}".strip(), paths)
    if isinstance(exc, RuntimeError) and is_inline_build_error(str(exc)):  # load_inline's compiler
        message = inline_build_error(str(exc), _read(submission), shown_name)
    elif "out of memory" in message.lower() or isinstance(exc, MemoryError):
        message = f"out of memory: {message}"
    elif "CUDA error" in message:
        message += " (kernel launches are asynchronous: the failing call may be an earlier one)"
    frames = [
        f"{where(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()}"
        for f in traceback.extract_tb(exc.__traceback__)
        if os.path.abspath(f.filename).startswith(task_dir + os.sep)
    ]
    return " | ".join([" ".join(message.split())[:1500], *frames[-4:]])


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            return source.read()
    except OSError:
        return ""


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _clone(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple | list):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def serve(request_fd: int, reply_fd: int) -> int:
    perf_ns = time.perf_counter_ns
    gc_disable, gc_enable = gc.disable, gc.enable
    enumerate_threads = threading.enumerate
    send, receive, encode = wire.send, wire.receive, wire.encode
    task_dir = os.getcwd()
    sys.path.insert(0, task_dir)
    import torch

    # nothing of the GPU before the first request: a warm pool starts this process before its run exists
    header = _next(request_fd)
    cuda = torch.cuda.is_available()
    rank, world_size = join_ranks(torch, cuda)
    allocated = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if allocated.isdigit():  # torch's default (every core of the node) oversubscribes a shared node
        torch.set_num_threads(max(1, int(allocated) // world_size))  # the job's CPUs shared by its ranks
    elif not cuda:  # as torch.utils.benchmark: one thread, or a busy neighbour stalls a parallel region
        torch.set_num_threads(1)
    sync: Any = torch.cuda.synchronize if cuda else (lambda: None)
    flush_buffer = None
    overhead_ns = 0.0
    if cuda:
        event_cls, record, elapsed = torch.cuda.Event, torch.cuda.Event.record, torch.cuda.Event.elapsed_time
        stream = torch.cuda.current_stream()
        l2_bytes = int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0))
        # the flush must cover the whole L2; twice its size (at least 256 MiB) leaves nothing of the input
        flush_buffer = torch.empty(max(2 * l2_bytes, 256 << 20) // 4, dtype=torch.int32, device="cuda")

    def measure(kernel: Any, data: Any) -> tuple[float, float, Any]:
        """(event ns, host ns, output) of one call; on a CPU both clocks are perf_counter_ns."""
        if not cuda:
            gc_disable()  # a collection inside the timed region is noise, not the kernel
            try:
                begin = perf_ns()
                output = kernel(data)
                host_ns = float(perf_ns() - begin)
            finally:
                gc_enable()
            return host_ns, host_ns, output
        assert flush_buffer is not None
        flush_buffer.zero_()  # evict L2, outside the timed region
        start = event_cls(enable_timing=True)  # type: ignore[no-untyped-call]
        end = event_cls(enable_timing=True)  # type: ignore[no-untyped-call]
        sync()
        gc_disable()
        try:
            host_begin = perf_ns()
            record(start, stream)
            output = kernel(data)
            record(end, stream)
            sync()  # the whole device: work the kernel left on other streams finishes here
            host_ns = float(perf_ns() - host_begin)
        finally:
            gc_enable()
        return elapsed(start, end) * 1e6, host_ns, output

    if cuda:  # calibrate the fixed host cost of one timed call, before any user code exists
        probe = torch.zeros(1, device="cuda")
        gaps = sorted(h - e for e, h, _ in (measure(lambda x: x.add_(1), probe) for _ in range(30)))
        overhead_ns = 2 * gaps[int(0.9 * len(gaps))] + 5000.0

    def timed_call(kernel: Any, data: Any) -> tuple[float, Any]:
        event_ns, host_ns, output = measure(kernel, data)
        # events only see the launching stream; the host clock sees everything. Host time beyond the
        # fixed cost calibrated above that the events missed was work on another stream: it counts.
        return max(event_ns, host_ns - overhead_ns), output

    baseline_threads = {t.ident for t in enumerate_threads()}
    generate_input: Any = None

    def check_threads() -> str | None:
        stray = [
            t.name
            for t in enumerate_threads()
            if t.ident not in baseline_threads and t.is_alive() and not _library_thread(t)
        ]
        if stray:
            return (
                f"custom_kernel left {len(stray)} thread(s) running ({', '.join(stray[:3])}): all of its "
                "work must be finished when it returns"
            )
        return None

    def answer(kernel: Any, case: dict[str, Any], want_output: bool) -> None:
        """One timed call of ``kernel`` on a fresh input and its reply: the path whose fixed cost the
        evaluator calibrates (with ``calibrate``) before the submission exists."""
        data = generate_input(**case)
        arg = _clone(data)  # the submission gets its own copy; the evaluator has its own pristine input
        ns, output = timed_call(kernel, arg)
        problem = check_threads()
        if problem is None:
            inputs = {t.untyped_storage().data_ptr() for t in _tensors(arg) + _tensors(data)}
            if any(t.untyped_storage().data_ptr() in inputs for t in _tensors(output)):
                problem = "custom_kernel returned its input (or a view of it): return a new tensor"
        if problem is not None:
            send(reply_fd, {"ok": False, "error": problem})
            return
        blobs: list[wire.Blob] = []
        value = encode(output, blobs) if want_output else None
        send(reply_fd, {"ok": True, "ns": ns, "value": value}, blobs)

    # before "load", only "calibrate" (the harness's own no-op kernel on the evaluator's cases) and "exit"
    while header.get("op") == "calibrate":
        try:
            if generate_input is None:
                import reference  # the task's own code, trusted: the evaluator imports it too

                generate_input = inputs_of(reference.generate_input, rank, world_size)
            size = int(header.get("output_bytes") or 0)
            spin_ns = min(float(header.get("spin_ns") or 0.0), 10e9)
            no_op = _no_op(perf_ns, spin_ns, size, "cuda" if cuda else "cpu")
            answer(no_op, dict(header.get("case") or {}), bool(header.get("output")))
        except wire.WireError:
            return 0
        except Exception as exc:
            send(reply_fd, {"ok": False, "error": f"calibration failed: {user_error(exc, task_dir)}"})
        header = _next(request_fd)
    if header.get("op") != "load":  # "exit" (or a channel closed) before the submission was loaded
        return 0
    # the user's own name of the file, for errors (the runner made it safe to show: protocol.shown_file_name)
    shown_name = str(header.get("file_name") or SUBMISSION_FILE)
    try:
        if generate_input is None:
            import reference

            generate_input = inputs_of(reference.generate_input, rank, world_size)
        import submission

        kernel = getattr(submission, "custom_kernel", None)
        if not callable(kernel):
            raise AttributeError(f"{shown_name} defines no function custom_kernel(data)")
    except BaseException as exc:
        error = user_error(exc, task_dir, shown_name)
        send(reply_fd, {"ok": False, "error": f"loading the submission failed: {error}"})
        return 0
    send(reply_fd, {"ok": True})

    while True:
        try:
            header, _ = receive(request_fd)
        except wire.WireError:
            return 0
        op = header.get("op")
        if op == "exit":
            return 0
        case = dict(header.get("case") or {})
        try:
            if op == "warmup":
                data = generate_input(**case)
                began = perf_ns()
                calls = 0
                # the ranks of a multi-GPU run make the same number of calls (each waits for the others in
                # its collectives): a count, not a time that each rank would read differently
                seconds = float(header["seconds"]) if world_size == 1 else 0.0
                while calls < int(header["min_calls"]) or perf_ns() - began < seconds * 1e9:
                    kernel(_clone(data))
                    sync()
                    calls += 1
                send(reply_fd, {"ok": True, "calls": calls})
            elif op == "profile":
                send(reply_fd, {"ok": True, "report": _profile(kernel, generate_input(**case), _clone, sync)})
            else:
                answer(kernel, case, bool(header.get("output")))
        except wire.WireError:
            return 0
        except Exception as exc:
            send(reply_fd, {"ok": False, "error": user_error(exc, task_dir, shown_name)})


def join_ranks(torch: Any, cuda: bool) -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) alone; of a multi-GPU run (harness/ranks.py set RANK and
    WORLD_SIZE) it takes its rank's GPU and joins the process group, whose collectives give up after
    HARNESS_COLLECTIVE_TIMEOUT_S (a rank that failed must not hold the others for ever)."""
    world_size = int(os.environ.get("WORLD_SIZE") or 1)
    if world_size == 1:
        return 0, 1
    rank = int(os.environ["RANK"])
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    timeout = datetime.timedelta(seconds=float(os.environ.get("HARNESS_COLLECTIVE_TIMEOUT_S") or 120))
    torch.distributed.init_process_group(
        backend="nccl" if cuda else "gloo", rank=rank, world_size=world_size, timeout=timeout
    )
    return rank, world_size


def inputs_of(generate_input: Any, rank: int, world_size: int) -> Any:
    """The task's generate_input for this rank: reference-kernels' distributed tasks take the rank and
    the world size (``generate_input(rank, world_size, **case)``); a single-GPU task's is itself."""
    if world_size == 1:
        return generate_input
    return functools.partial(rank_inputs, generate_input, rank, world_size)


def _no_op(perf_ns: Any, spin_ns: float, size: int, device: str) -> Any:
    """The harness's kernel for a twin request: busy for as long as the paired timed call took (the same
    burst on the CPU, so that the same load stretches the rest of both requests alike), then a new output
    of ``size`` bytes written in full, as a kernel makes its own: its making is inside the timed region and
    its freeing after it, as for the kernel's."""
    import torch

    def no_op(_data: Any) -> Any:
        until = perf_ns() + spin_ns
        while perf_ns() < until:
            pass
        return torch.ones(size, dtype=torch.uint8, device=device)

    return no_op


def _next(fd: int) -> dict[str, Any]:
    """The next request; ``exit`` when the evaluator closed the channel."""
    try:
        return wire.receive(fd)[0]
    except wire.WireError:
        return {"op": "exit"}


def _library_thread(thread: threading.Thread) -> bool:
    target = getattr(thread, "_target", None) or type(thread).run
    module = getattr(target, "__module__", None) or ""
    return module.split(".")[0] in LIBRARY_THREADS


def _profile(kernel: Any, data: Any, clone: Any, sync: Any) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    args = [clone(data) for _ in range(3)]  # made before profiling: the report is the kernel's alone
    sync()
    with profile(activities=activities) as prof:
        for arg in args:
            kernel(arg)
            sync()
    sort = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
    return str(prof.key_averages().table(sort_by=sort, row_limit=15))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m harness.usercode <request-fd> <reply-fd>", file=sys.stderr)
        return 2
    return serve(int(argv[1]), int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
