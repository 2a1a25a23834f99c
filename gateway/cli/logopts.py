"""`--log-format` of the long-running commands (worker, serve, bot), and their settings read with their
logging set up from them: GATEWAY_LOG_LEVEL, GATEWAY_LOG_FORMAT and the root's -v (gateway.core.logs)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.core import logs

if TYPE_CHECKING:
    from gateway.config.settings import Settings


class LogFormatName(StrEnum):
    text = "text"
    json = "json"


LogFormatOption = Annotated[
    LogFormatName | None,
    typer.Option(
        "--log-format",
        case_sensitive=False,
        help="text (timestamp, level, logger, message) or json (one object a line); "
        "default: GATEWAY_LOG_FORMAT, else text",
        show_default=False,
    ),
]


def service_settings(log_format: LogFormatName | None) -> Settings:
    """The gateway's settings, with the logs of a long-running command set up: --log-format, else
    GATEWAY_LOG_FORMAT; GATEWAY_LOG_LEVEL (-v: DEBUG). A setting that cannot be read: exit 2, naming it."""
    from pydantic import ValidationError

    from gateway.cli.common import EXIT_USAGE, error
    from gateway.config.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        for problem in exc.errors():
            name = "GATEWAY_" + "_".join(str(part) for part in problem["loc"]).upper()
            error(f"{name}: {problem['msg']}")
        raise typer.Exit(EXIT_USAGE) from None
    logs.configure(None, log_format.value if log_format else settings.log_format, settings.log_level)
    return settings
