"""The CLI shows user-chosen strings as written (no markup, control characters escaped) and parses the
admin commands' deadlines and durations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer
from rich.console import Console

from gateway.cli import common
from gateway.cli.leaderboards import parse_deadline, parse_duration
from gateway.cli.output import plain
from gateway.core.formatting import duration


def shown(value: str) -> str:
    console = Console(record=True, width=200, color_system="truecolor")
    console.print(plain(value))
    return console.export_text(styles=False).rstrip("\n")


def test_plain_keeps_markup_and_escapes_control_characters() -> None:
    assert shown("[bold]x[/] [/]") == "[bold]x[/] [/]"
    assert shown("a\x1b[2Jb\x07c\rd") == "a\\x1b[2Jb\\x07c\\rd"
    assert shown("abc\u202edcba caf\udce9") == "abc\\u202edcba caf\\udce9"
    assert shown("👨\u200d👩\u200d👧 Zoë 日本語") == "👨\u200d👩\u200d👧 Zoë 日本語"


def test_errors_are_text_not_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(record=True, width=200)
    monkeypatch.setattr(common, "console", console)
    common.error("no leaderboard named '[/]' [bold]x")  # rich raised MarkupError on this
    assert console.export_text() == "error: no leaderboard named '[/]' [bold]x\n"


DURATIONS = [("90", 90), ("90s", 90), ("30min", 1800), ("30m", 1800), ("2h", 7200), ("1h30m", 5400)]


@pytest.mark.parametrize(("text", "seconds"), [*DURATIONS, ("1d", 86400), ("2w", 1209600), (" 1H 5S ", 3605)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "1.5h", "-1h", "h", "0s", "1y", ""])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(typer.Exit):
        parse_duration(text)


def test_deadlines_without_a_zone_are_utc() -> None:
    assert parse_deadline("2026-12-31T23:59Z") == datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert parse_deadline("2026-12-31 23:59") == datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert parse_deadline("2027-01-01T01:59+02:00").astimezone(UTC) == datetime(
        2026, 12, 31, 23, 59, tzinfo=UTC
    )
    with pytest.raises(typer.Exit):
        parse_deadline("next friday")


def test_durations_read_back_as_written() -> None:
    assert [duration(s) for s in (30, 90, 1800, 5400, 7200, 86400)] == [
        "30 s",
        "90 s",
        "30 min",
        "90 min",
        "2 h",
        "1 d",
    ]
