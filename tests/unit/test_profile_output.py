"""Profile mode's tables on their way to users: the evaluator's key/value line keeps a table whole (and
capped), RunResult reads it back, and the CLI, the bot and the run JSON show it as the submission's own
text (escaped, never markup)."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bot.embeds import FIELD_LIMIT, PROFILE_FIELD, profile_attachment, submission_embed
from bot.progress import SubmissionStatus
from gateway.cli.api_json import view_of_run
from gateway.cli.output import print_report
from gateway.core.errors import ResultError
from gateway.http.api.schemas import run_out
from gateway.running.results import verified_ncu_report
from gateway.service.facade import RunRecord
from gateway.service.model import QueuedRun, Submission
from gateway.service.runview import run_view
from harness.phase_result import PhaseResult
from harness.protocol import PROFILE_REPORT_LIMIT, RESULT_VERSION, decode_report, encode_report, parse_kv
from harness.run_result import RunResult

RUN = "33333333-0000-0000-0000-000000000000"
NOW = datetime(2026, 12, 7, tzinfo=UTC)
TABLE = (
    "-------------  ------------  ------------\n"
    "         Name    Self CPU %      Self CPU\n"
    "-------------  ------------  ------------\n"
    "    aten::add       100.00%      62.807us\n"
    "Self CPU time total: 62.807us\n"
)


def profile_kv(*reports: str) -> dict[str, str]:
    lines = [f"benchmark-count: {len(reports)}"]
    for i, report in enumerate(reports):
        lines += [
            f"benchmark.{i}.spec: size: {1024 * (i + 1)}; seed: {i}",
            f"benchmark.{i}.report: {encode_report(report)}",
        ]
    return parse_kv("\n".join([*lines, "check: pass"]) + "\n")


def result_payload(*reports: str) -> dict[str, Any]:
    phase = PhaseResult("profile", 0, False, 1.0, profile_kv(*reports))
    test = PhaseResult("test", 0, False, 1.0, {"test-count": "0", "check": "pass"})
    return RunResult(RESULT_VERSION, RUN, "profile", {"hostname": "node1"}, [test, phase]).to_payload()


def profile_record(*reports: str) -> RunRecord:
    return RunRecord(
        RUN, 7, "alice", "k.py", "vectoradd", "profile", False, "H100", "alpha", "h100", "12", 1,
        "COMPLETED", True, None, None, result_payload(*reports), NOW, NOW, NOW, "w", 1, False,
    )  # fmt: skip


def test_a_table_travels_whole_on_one_line_and_is_capped() -> None:
    line = encode_report(TABLE)
    assert "\n" not in line and decode_report(line) == TABLE
    assert decode_report("an old one-line report") == "an old one-line report"
    huge = decode_report(encode_report("x" * (PROFILE_REPORT_LIMIT * 3)))
    assert huge.startswith("x" * PROFILE_REPORT_LIMIT) and huge.endswith(
        f"[cut at {PROFILE_REPORT_LIMIT} characters]"
    )
    [first, second] = RunResult.from_payload(result_payload(TABLE, "second")).profiles
    assert (first.spec, first.report) == ("size: 1024; seed: 0", TABLE) and second.report == "second"
    assert RunResult.from_payload(result_payload(TABLE)).benchmarks == []  # a profile phase times nothing


def test_the_cli_prints_each_table_as_text_never_markup() -> None:
    hostile = TABLE + "[bold red]not markup[/] \x1b[2J"
    out = io.StringIO()
    run = json.loads(run_out(profile_record(hostile)).model_dump_json())
    assert run["profile"] == [{"spec": "size: 1024; seed: 0", "report": hostile}]
    print_report(Console(file=out, width=200, color_system=None), view_of_run(run))
    shown = out.getvalue()
    assert "profile of size: 1024; seed: 0" in shown and "aten::add       100.00%      62.807us" in shown
    assert "[bold red]not markup[/]" in shown and "\x1b" not in shown and "\\x1b[2J" in shown
    assert "profiled: the tables are above" in shown and "no timings in this mode" not in shown


def test_the_bot_shows_a_short_table_inline_and_attaches_a_long_one() -> None:
    submission = Submission(7, "vectoradd", [QueuedRun(RUN, "H100", False)])
    short = SubmissionStatus.of(submission, "alice", "k.py", "profile")
    short.runs[RUN].view = run_view(profile_record("aten::add 62us @everyone"))
    [field] = [f for f in submission_embed(short).fields if f.name == PROFILE_FIELD]
    assert "aten::add 62us" in (field.value or "") and profile_attachment(short.runs[RUN].view) is None

    long = SubmissionStatus.of(submission, "alice", "k.py", "profile")
    long.runs[RUN].view = run_view(profile_record(TABLE * 10, TABLE * 10))
    embed = submission_embed(long)
    [field] = [f for f in embed.fields if f.name == PROFILE_FIELD]
    assert "attached as profile-33333333.txt" in (field.value or "") and len(field.value or "") <= FIELD_LIMIT
    attachment = profile_attachment(long.runs[RUN].view)
    assert attachment is not None and attachment.filename == "profile-33333333.txt"
    body = attachment.fp.read().decode()
    assert body.startswith("benchmark size: 1024; seed: 0\n") and body.count("aten::add") == 20


def test_only_the_ncu_report_the_result_signed_is_taken() -> None:
    report = b"an ncu report"
    signed = {"file": "profile.ncu-rep", "size": len(report), "sha256": hashlib.sha256(report).hexdigest()}
    assert verified_ncu_report(report, signed, RUN) == report
    for forged, why in (
        (b"another report", "is not the one its result names"),
        (report + b"!", "is not the one its result names"),
        (None, "is not in its bundle"),
    ):
        with pytest.raises(ResultError, match=why):
            verified_ncu_report(forged, signed, RUN)


def test_the_cli_says_where_the_ncu_report_is_or_why_there_is_none() -> None:
    def shown(ncu: dict[str, Any], saved: Path | None = None) -> str:
        out = io.StringIO()
        run = json.loads(run_out(profile_record(TABLE)).model_dump_json()) | {"ncu_report": ncu}
        print_report(Console(file=out, width=80, color_system=None), view_of_run(run), saved)
        return out.getvalue()

    url = f"/api/runs/{RUN}/profile.ncu-rep"
    assert f"Nsight Compute report (1.5 MiB): download it from the gateway: GET {url}\n" in shown(
        {"url": url, "size": 3 * 2**19}
    )
    long = Path("/a/very/long/folder/name/that/goes/past/the/width/of/the/terminal/k.py.33333333.ncu-rep")
    assert f"Nsight Compute report (2.0 KiB): saved to {long}\n" in shown({"url": url, "size": 2048}, long)
    assert "no Nsight Compute report: ncu [red]is not[/] on the PATH" in shown(
        {"error": "ncu [red]is not[/] on the PATH"}
    )
