"""gateway.core.logs: one handler on stderr for every logger, text with an ISO timestamp or one JSON object a
line; the level and format of `gateway worker`, `serve` and `bot` from their settings and --log-format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.core import logs


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(logs, "_verbose", False)  # the -v a configure call remembers
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def logged(log_format: logs.LogFormat, level: str = "INFO", verbose: bool = False) -> list[str]:
    """What these records look like on stderr, configured so."""
    out = io.StringIO()
    logs.configure(verbose, log_format, level, stream=out)
    logging.getLogger("gateway.service.queue_worker").info("run %s: %s", "r-1", "PENDING")
    logging.getLogger("asyncssh").info("Opening SSH connection")  # another library's INFO: dropped
    logging.getLogger("asyncssh").warning("host key changed")
    logging.getLogger("uvicorn.access").debug("debug only")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bot.client").exception("a follower failed")
    return out.getvalue().splitlines()


def test_json_lines_parse_and_carry_timestamp_level_logger_message_and_traceback() -> None:
    entries = [json.loads(line) for line in logged("json") if line.startswith("{")]
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("INFO", "gateway.service.queue_worker", "run r-1: PENDING"),
        ("WARNING", "asyncssh", "host key changed"),
        ("ERROR", "bot.client", "a follower failed"),
    ]
    for entry in entries:
        assert datetime.fromisoformat(entry["ts"]).utcoffset() is not None
    assert "ValueError: boom" in entries[2]["exc_info"] and "exc_info" not in entries[0]
    assert len(logged("json")) == 3  # the traceback is inside its object: one line per record


def test_text_lines_start_with_an_iso_timestamp_then_level_and_logger() -> None:
    lines = logged("text")
    stamp, level, rest = lines[0].split(maxsplit=2)
    assert datetime.fromisoformat(stamp).utcoffset() is not None
    assert (level, rest) == ("INFO", "gateway.service.queue_worker: run r-1: PENDING")
    assert "WARNING asyncssh: host key changed" in lines[1]
    assert "ERROR   bot.client: a follower failed" in lines[2] and lines[-1] == "ValueError: boom"


def test_verbose_is_debug_for_every_logger_and_is_kept_for_the_next_call() -> None:
    assert any("asyncssh: Opening SSH connection" in line for line in logged("text", verbose=True))
    out = io.StringIO()
    logs.configure(None, "text", "WARNING", stream=out)  # a service command after the root's -v
    logging.getLogger("gateway.service.queue_worker").debug("still verbose")
    assert "still verbose" in out.getvalue()


def test_a_second_call_replaces_the_handler_and_warning_level_hides_info() -> None:
    logs.configure(False, "json", "INFO", stream=io.StringIO())
    out = io.StringIO()
    logs.configure(False, "text", "WARNING", stream=out)
    logging.getLogger("gateway.service.queue_worker").info("hidden")
    logging.getLogger("gateway.service.queue_worker").warning("shown")
    assert out.getvalue().endswith("WARNING gateway.service.queue_worker: shown\n")
    assert [h.get_name() for h in logging.getLogger().handlers].count("gateway.core.logs") == 1
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        logs.configure(False, "text", "LOUD")


def test_the_bot_command_obeys_the_log_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """`gateway bot` sets its logs up from GATEWAY_LOG_LEVEL / GATEWAY_LOG_FORMAT before anything else
    (here it then stops: no token), and --log-format wins over the setting."""
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    monkeypatch.delenv("GATEWAY_DISCORD_TOKEN", raising=False)
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "warning")
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "JSON")
    assert CliRunner().invoke(app, ["bot"]).exit_code == 2
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "gateway.core.logs"]
    assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
    assert logging.getLogger().level == logging.WARNING
    assert CliRunner().invoke(app, ["bot", "--log-format", "text"]).exit_code == 2
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "gateway.core.logs"]
    assert isinstance(ours[0].formatter, logs.TextFormatter)


def test_an_unreadable_log_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "loud")
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2 and "GATEWAY_LOG_LEVEL" in result.output, result.output
    bad_flag = CliRunner().invoke(app, ["serve", "--log-format", "xml"])
    assert bad_flag.exit_code == 2 and "'xml' is not one of" in " ".join(bad_flag.output.split())
