"""Names a user controls (file, user, leaderboard) are data, never markup or shell."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from gateway.cli.output import print_report
from gateway.config.settings import Settings
from gateway.core.errors import SubmissionError
from gateway.service.facade import Gateway, RunReport
from gateway.service.model import SubmitRequest
from gateway.service.runview import view_of_report
from tests.unit.fakes import tiny_task


async def test_a_file_name_with_a_newline_is_refused(tmp_path: Path) -> None:
    gateway = Gateway(Settings(sites_dir=tmp_path, local_workdir=tmp_path / "runs"), {}, None)
    request = SubmitRequest(
        "def custom_kernel(d):\n    return d\n", "a\nb.py", "u", tiny_task(), mode="test", admin=True
    )
    with pytest.raises(SubmissionError, match="file name"):
        await gateway.submit(request)
    await gateway.close()


def test_report_shows_names_with_brackets_verbatim() -> None:
    report = RunReport("r-1", "[b]eve[/]", "sol[/].py", "alpha", "h100", "H100")
    console = Console(record=True, width=300)
    print_report(console, view_of_report(report))
    assert "sol[/].py by [b]eve[/]" in console.export_text()
