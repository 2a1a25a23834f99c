"""The trusted runner: ``python -m harness run <bundle>``.

It reads spec.json, reads and deletes the per-run key before any user code runs, makes itself
non-dumpable, runs each phase's evaluator in its own process group with a dedicated result pipe and a
time limit, caps everything it reads, and writes result.json signed with the key. Its stdout carries only
progress lines for the gateway to show; results are never taken from there.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import socket
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import ncu
from harness.compile import compile_cuda
from harness.phase_result import PhaseResult
from harness.precheck import scan_submission
from harness.process import EvaluatorProcess
from harness.protocol import (
    CACHE_DIR_ENV,
    FILE_NAME_ENV,
    PROGRESS_PREFIX,
    RESULT_VERSION,
    SUBMISSION_FILE,
    HarnessError,
    format_test_spec,
    load_key_hex,
    shown_file_name,
    shown_paths,
    sign_result,
)
from harness.sandbox import Isolation, SandboxError

if TYPE_CHECKING:  # a warm pool's (harness/pool.py): a run's bundle does not carry it
    from harness.standby import Standby

PHASES = {
    "test": ["test"],
    "benchmark": ["test", "benchmark"],
    "leaderboard": ["test", "leaderboard"],
    "profile": ["test", "profile"],
}
WALL_CLOCK_SLACK_S = 0.5
LANGUAGES = ("py", "cu")  # cu: the task's program is built with nvcc first (harness/compile.py)


def progress(message: str) -> None:
    print(PROGRESS_PREFIX + message, flush=True)


def make_non_dumpable() -> None:
    """No ptrace or core dump of this process by user code running as the same user."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
        except (OSError, AttributeError):
            progress("warning: could not make the runner non-dumpable")


def write_result(bundle: Path, payload: dict[str, Any], key: bytes) -> None:
    document = sign_result(payload, key)
    tmp = bundle / ".result.json.tmp"
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, bundle / "result.json")


def load_spec(bundle: Path) -> dict[str, Any]:
    """spec.json, checked enough that the phases can run; ValueError says what is wrong."""
    try:
        spec = json.loads((bundle / "spec.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read spec.json: {exc}") from exc
    if not isinstance(spec, dict):
        raise ValueError("spec.json is not an object")
    if not isinstance(spec.get("run_id"), str) or spec.get("mode") not in PHASES:
        raise ValueError(f"spec.json needs a run_id and a mode in {sorted(PHASES)}")
    for name in ("tests", "benchmarks"):
        cases = spec.get(name, [])
        if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
            raise ValueError(f"spec.json: {name} must be a list of objects")
    timeouts = spec.get("timeouts") or {}
    if not isinstance(timeouts, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in timeouts.values()
    ):
        raise ValueError("spec.json: timeouts must map phases to positive numbers of seconds")
    main = spec.get("main")
    if main is not None and (
        not isinstance(main, str) or Path(main).is_absolute() or ".." in Path(main).parts
    ):
        raise ValueError("spec.json: main must be a path inside task/")
    if spec.get("file_name") is not None and not isinstance(spec["file_name"], str):
        raise ValueError("spec.json: file_name must be a string or null")
    if spec.get("lang", "py") not in LANGUAGES:
        raise ValueError(f"spec.json: lang must be one of {', '.join(LANGUAGES)}")
    if not isinstance(spec.get("ncu", False), bool):
        raise ValueError("spec.json: ncu must be true or false")
    gpus = spec.get("gpus", 1)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 1 <= gpus <= 64:
        raise ValueError("spec.json: gpus must be a whole number of GPUs per run, 1 to 64")
    if spec.get("seed") is not None and not isinstance(spec["seed"], int):
        raise ValueError("spec.json: seed must be an integer or null")
    limit = spec.get("max_time_s")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0):
        raise ValueError("spec.json: max_time_s must be a positive number of seconds or null")
    return spec | {"timeouts": timeouts}


def take_key(bundle: Path) -> bytes:
    """Read the run key and delete the file, whatever happens, before any user code runs."""
    key_path = bundle / "key"
    try:
        return load_key_hex(key_path.read_text())
    finally:
        key_path.unlink(missing_ok=True)


def snapshot(bundle: Path, slot: Path | None = None) -> dict[str, str]:
    """Digest of every file a later phase would import: a submission must not rewrite reference.py or the
    harness for the phase after its own (it runs as the same user, so this is detection, not prevention);
    with ``slot``, also of a standby's copy of the task."""
    digests = {}
    roots = [bundle / "harness", bundle / "task", *([] if slot is None else [slot / "task"])]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() or path.is_symlink():
                digest = hashlib.sha256(path.read_bytes() if path.is_file() else b"link").hexdigest()
                digests[str(path.relative_to(root.parent))] = digest
    return digests


def _summary(result: PhaseResult) -> str:
    try:
        if result.passed and result.name == "test":
            tests = result.tests()
            return f"{sum(t.passed for t in tests)}/{len(tests)} passed"
        if result.passed:
            return f"{len(result.benchmarks())} benchmarks done"
    except HarnessError as exc:
        return f"unreadable results: {exc}"
    return f"failed: {result.failure_message()}"


def cross_check(result: PhaseResult) -> str | None:
    """The runner's own clock against the evaluator's timings: a phase cannot have timed calls for longer
    than it ran. Catches timings forged (or inflated) by an evaluator that runs user code in-process."""
    try:
        timed_s = sum(b.runs * b.mean_ns for b in result.benchmarks() if b.passed) / 1e9
    except HarnessError:
        return None  # failure_message() already says why the lines are unreadable
    if timed_s > result.duration_s + WALL_CLOCK_SLACK_S:
        return (
            f"phase {result.name} reports {timed_s:.2f} s of timed calls in {result.duration_s:.2f} s of "
            "wall-clock time: its timings are rejected"
        )
    return None


def submission_path(bundle: Path, spec: dict[str, Any]) -> Path:
    """The submission's file in the bundle (spec.json ``submission``, a name inside task/)."""
    return bundle / "task" / Path(str(spec.get("submission") or SUBMISSION_FILE)).name


def path_replacements(bundle: Path, spec: dict[str, Any], slot: Path | None = None) -> list[tuple[str, str]]:
    """What users see instead of the bundle's paths in a phase's messages and output (a task's own
    evaluator prints Python's tracebacks): the submission as its author named it (``File "kernel.py",
    line 7``), the task's files by their names, the rest inside the bundle, without the site's workdir;
    the same of ``slot``, a standby's copy of the task (harness/standby.py)."""
    shown = shown_file_name(spec.get("file_name"))
    return [
        replacement
        for root in ([bundle] if slot is None else [bundle, slot])
        for replacement in [
            (str(submission_path(root, spec)), shown),
            (str(root / "task") + os.sep, ""),
            (str(root) + os.sep, ""),
        ]
    ]


def as_shown(result: PhaseResult, replacements: list[tuple[str, str]]) -> PhaseResult:
    """``result`` with the bundle's paths in its values and output tails as users see them."""
    return replace(
        result,
        kv={key: shown_paths(value, replacements) for key, value in result.kv.items()},
        stdout_tail=shown_paths(result.stdout_tail, replacements),
        stderr_tail=shown_paths(result.stderr_tail, replacements),
    )


def _case_files(spec: dict[str, Any], names: list[str], tmp: Path) -> list[Path]:
    files = []
    for name in names:
        cases = spec.get("tests", []) if name == "test" else spec.get("benchmarks", [])
        path = tmp / f"{name}.txt"
        path.write_text("".join(format_test_spec(c) + "\n" for c in cases))
        files.append(path)
    return files


def run_phases(
    bundle: Path,
    spec: dict[str, Any],
    tmp: Path,
    isolation: Isolation,
    ncu_report: str | None = None,
    standby: Standby | None = None,
) -> tuple[list[PhaseResult], str | None]:
    """Each phase of the mode; with ``ncu_report``, the built-in evaluator's profile phase also runs the
    benchmarks under Nsight Compute, writing that report (harness/ncu.py). ``standby``: the run's
    built-in evaluator already started (a warm pool's), used where it can be."""
    names = PHASES[spec["mode"]]
    files = _case_files(spec, names, tmp)
    slot = standby.slot if standby is not None else None
    before = snapshot(bundle, slot)
    results: list[PhaseResult] = []
    replacements = path_replacements(bundle, spec, slot)
    program = None
    if spec.get("lang") == "cu":  # built before any test runs; its errors are the run's
        progress("compiling the CUDA sources with nvcc")
        built = compile_cuda(bundle, spec, tmp / "build", isolation)
        if built.program is None:
            return [], shown_paths(built.error or "compile failed", replacements)
        progress(f"compiled in {built.duration_s:.1f} s")
        program = [str(built.program)]
    # the compilers' caches (torch extensions, Triton) of every process of this run: one build per run
    cache = tmp / "cache"
    cache.mkdir(mode=0o700)
    extra_env = {FILE_NAME_ENV: shown_file_name(spec.get("file_name")), CACHE_DIR_ENV: str(cache)}
    if ncu_report:
        extra_env[ncu.REPORT_ENV] = ncu_report
    # the built-in evaluator serves all phases from one process; a task's own runs once per phase
    own = bool(spec.get("main")) or program is not None
    shared = None
    if standby is not None and standby.usable(spec, own):
        shared = standby.attach(bundle, spec, names, files, extra_env)
    elif not own:
        shared = EvaluatorProcess(bundle, spec, names, files, isolation, extra_env)
    for i, name in enumerate(names):
        progress(f"phase {name} started")
        if shared is not None:
            result = shared.finish_phase(i)
        else:
            own_phase = EvaluatorProcess(
                bundle, spec, [name], [files[i]], isolation, program=program, cache=cache
            )
            result = own_phase.finish_phase(0)
        result = as_shown(result, replacements)
        results.append(result)
        progress(f"phase {name} finished in {result.duration_s:.1f} s: {_summary(result)}")
        after = snapshot(bundle, slot)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        problem = cross_check(result)
        if changed:
            problem = f"the submission changed files of the bundle: {', '.join(changed[:5])}"
        if problem is not None or not result.passed or i == len(names) - 1:
            if shared is not None:
                shared.stop()
            if problem is None and not result.passed and i < len(names) - 1:
                progress(f"skipping {', '.join(names[i + 1 :])}: phase {name} did not pass")
            return results, problem
    return results, None


def _ncu_report_path(spec: dict[str, Any], tmp: Path) -> str | None:
    """Where the evaluator's ncu pass writes its report (outside the work folder: the sandbox binds it
    writable), when spec.json asks for one, the built-in evaluator runs and ncu is on the PATH."""
    if not spec.get("ncu") or spec["mode"] != "profile" or spec.get("main") or ncu.find_ncu() is None:
        return None
    folder = tmp / "ncu"
    folder.mkdir(mode=0o700)
    return str(folder / "profile")


def _ncu_outcome(
    spec: dict[str, Any], phases: list[PhaseResult], report: str | None, bundle: Path
) -> dict[str, Any]:
    """result.json's ``ncu``: the report moved into the bundle with its size and digest, or why not."""
    if spec.get("main"):
        return {"error": "this task runs its own evaluator: Nsight Compute runs under the built-in one only"}
    if report is None:
        return {"error": f"Nsight Compute (ncu) is not on the job's PATH on {socket.gethostname()}"}
    profile = next((p for p in phases if p.name == "profile"), None)
    if profile is None or not profile.passed:
        return {"error": "no Nsight Compute report: the profile did not pass"}
    said = profile.kv.get("ncu", "")
    if said != "done":
        return {"error": said.removeprefix("error: ") or "the evaluator did not run ncu"}
    return ncu.collect(report, bundle)


def run_bundle(
    bundle: Path, isolation: Isolation, standby: Standby | None = None, system: dict[str, Any] | None = None
) -> int:
    """The run of ``bundle`` to its signed result.json; ``standby``: its evaluator started before the run
    arrived (a warm pool's), ended here when the run cannot use it; ``system``: the node's facts gathered
    already (a pool gathers them once)."""
    try:
        return _run_bundle(bundle, isolation, standby, system)
    finally:
        if standby is not None:
            standby.close()


def _run_bundle(
    bundle: Path, isolation: Isolation, standby: Standby | None, system: dict[str, Any] | None
) -> int:
    payload: dict[str, Any] = {
        "version": RESULT_VERSION,
        "run_id": "",
        "mode": "",
        "system": {},
        "phases": [],
        "error": None,
    }
    spec: dict[str, Any] | None = None
    try:
        spec = load_spec(bundle)
        payload["run_id"], payload["mode"] = spec["run_id"], spec["mode"]
    except ValueError as exc:
        payload["error"] = f"bad spec.json: {exc}"
    try:
        key = take_key(bundle)
    except (OSError, HarnessError) as exc:
        progress(f"cannot read the run key in {bundle}: {exc}; no authenticated result can be written")
        return 2
    make_non_dumpable()
    if spec is not None:
        try:
            if isolation.confined:
                isolation.tool()  # say now, in the result, when the node lacks the sandbox's tool
        except SandboxError as exc:
            payload["error"] = f"the sandbox cannot start on {socket.gethostname()}: {exc}"
            spec = None
    if spec is not None:
        # read before any user code runs: the submission could rewrite itself
        submission = submission_path(bundle, spec)
        payload["warnings"] = scan_submission(submission, shown_file_name(spec.get("file_name")))
        for warning in payload["warnings"]:
            progress(f"pre-check: {warning}")
        progress(
            f"run {spec['run_id']}: {spec['mode']} on {socket.gethostname()}, isolation {isolation.kind}"
        )
        with tempfile.TemporaryDirectory(prefix="harness-") as tmp:
            report = _ncu_report_path(spec, Path(tmp))
            try:
                phases, payload["error"] = run_phases(bundle, spec, Path(tmp), isolation, report, standby)
                if spec.get("ncu") and spec["mode"] == "profile":
                    payload["ncu"] = _ncu_outcome(spec, phases, report, bundle)
                    progress(f"Nsight Compute: {payload['ncu'].get('error') or 'report written'}")
            except OSError as exc:  # the bundle itself is broken (no task/, unwritable temp dir, ...)
                phases, payload["error"] = [], f"the runner failed: {type(exc).__name__}: {exc}"
        payload["phases"] = [asdict(p) for p in phases]
    else:
        progress(payload["error"])
    if system is None:  # imported here: importlib.metadata and platform would delay the evaluator's start
        from harness.sysinfo import system_info

        system = system_info()
    payload["system"] = system | {"isolation": isolation.kind}
    write_result(bundle, payload, key)
    progress("result written" + (f" with error: {payload['error']}" if payload["error"] else ""))
    return 0


def parse_args(argv: list[str], command: str = "run") -> tuple[Path, Isolation]:
    """``run <bundle> [--isolation KIND] [--isolation-command PATH] [--image IMAGE] [--python PYTHON]
    [--bind PATH]...``, as the job script passes them from the site's YAML (a pool's job: ``pool
    <pool-dir>`` with the same options)."""
    parser = argparse.ArgumentParser(prog="python -m harness", exit_on_error=False)
    parser.add_argument("command", choices=[command])
    parser.add_argument("bundle")
    parser.add_argument("--isolation", default="bubblewrap")
    parser.add_argument("--isolation-command")
    parser.add_argument("--image")
    parser.add_argument("--python")
    parser.add_argument("--bind", action="append", default=[])
    args = parser.parse_args(argv)
    isolation = Isolation(args.isolation, args.isolation_command, args.image, args.python, tuple(args.bind))
    return Path(args.bundle).resolve(), isolation


def main(argv: list[str]) -> int:
    try:
        bundle, isolation = parse_args(argv)
    except (argparse.ArgumentError, SandboxError) as exc:
        print(f"usage: python -m harness run <bundle-dir> [--isolation KIND ...]: {exc}", file=sys.stderr)
        return 2
    return run_bundle(bundle, isolation)
