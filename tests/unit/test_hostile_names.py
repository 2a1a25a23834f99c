"""Names a user controls (file, user, leaderboard) are data, never markup or shell: the gaps still open."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from gateway.cli.output import print_report
from gateway.errors import SubmissionError
from gateway.service import Gateway, RunReport, SubmitRequest
from gateway.settings import Settings
from tests.unit.fakes import tiny_task


@pytest.mark.xfail(
    strict=True,
    reason="Gateway._check_code does not check file names: a name with a newline is accepted "
    "(gateway/service.py; see the report)",
)
async def test_a_file_name_with_a_newline_is_refused(tmp_path: Path) -> None:
    gateway = Gateway(Settings(sites_dir=tmp_path, local_workdir=tmp_path / "runs"), {}, None)
    request = SubmitRequest("def custom_kernel(d):\n    return d\n", "a\nb.py", "u", tiny_task(), mode="test")
    with pytest.raises(SubmissionError, match="file name"):
        await gateway.submit(request)
    await gateway.close()


@pytest.mark.xfail(
    strict=True,
    reason="print_report puts the file and user names into a rich Table title, which parses them as "
    "markup: '[b]' vanishes and '[/]' raises MarkupError (gateway/cli/output.py; see the report)",
)
def test_report_shows_names_with_brackets_verbatim() -> None:
    report = RunReport("r-1", "[b]eve[/]", "sol[/].py", "alpha", "h100", "H100")
    console = Console(record=True, width=300)
    print_report(console, report)
    assert "sol[/].py by [b]eve[/]" in console.export_text()
