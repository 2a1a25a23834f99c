"""Where log records go: one handler on the root logger, writing to stderr, that every logger reaches
(the gateway's, the bot's, uvicorn's, discord.py's, asyncssh's), as text or as JSON.

text: ``2026-12-07T06:50:01.123+00:00 INFO    gateway.service.queue_worker: message`` (UTC), a traceback on
the lines after; json: one object a line, ``{"ts", "level", "logger", "message"}`` and ``exc_info`` (the
traceback as text) when there is one, for a log collector. Only logging here, nothing heavy: the CLI's root
callback calls ``configure`` on every command."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# loggers whose INFO lines a service's operator reads; every other library's reach the handler from
# WARNING up, unless DEBUG is asked for (asyncssh's INFO is a line per connection and channel)
SERVICE_LOGGERS = ("gateway", "bot", "uvicorn", "discord")
_HANDLER_NAME = "gateway.core.logs"
_verbose = False  # the root callback's -v, kept for the commands that configure again


def timestamp(record: logging.LogRecord) -> str:
    """When the record was made, ISO 8601 in UTC to the millisecond."""
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """timestamp, level, logger name, message; the traceback, if any, on the lines after."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, and exc_info (a traceback as text)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is when a record comes (as logging's last resort does), not as it was
    when configured: a test runner or a daemoniser may swap it."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


class _Quieter(logging.Filter):
    """Other libraries' records below WARNING are dropped: the operator reads the services' own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.partition(".")[0] in SERVICE_LOGGERS


def configure(
    verbose: bool | None = None,
    log_format: LogFormat = "text",
    level: str | int = logging.WARNING,
    stream: TextIO | None = None,
) -> None:
    """Send every log record through one handler on stderr (else ``stream``) in ``log_format``; a second
    call replaces the first's handler. ``level`` is that of the gateway's, the bot's, uvicorn's and
    discord.py's loggers; other libraries log warnings and worse, unless the level is DEBUG. ``verbose``:
    DEBUG, whatever ``level`` says; None: as the last call said (a service command configures again with
    its settings after the root callback's -v)."""
    global _verbose
    if verbose is not None:
        _verbose = verbose
    wanted = logging.DEBUG if _verbose else _level_number(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    if wanted > logging.DEBUG:
        handler.addFilter(_Quieter())
    root.addHandler(handler)
    root.setLevel(wanted)


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: one of {', '.join(LOG_LEVELS)}")
    return number
