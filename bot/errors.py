"""What a Discord user is told when a command fails, and what is only logged.

Tree::

    BotError
     └── NotAdminError (also app_commands.CheckFailure: raised by the /admin check)

The service's UserError (and its RefusedError, SubmissionError, TaskError) carry messages meant for
users and are shown as they are. Anything else is logged with a reference the user can quote to admins;
they never see a traceback."""

from __future__ import annotations

import logging
import secrets

from discord import app_commands

from gateway.core.errors import RefusedError, UserError

log = logging.getLogger(__name__)


class BotError(Exception):
    """Root of the bot's own errors; its message may be shown to the user."""


class NotAdminError(BotError, app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("only the gateway's admins (a configured role of this server) may use /admin")


def user_message(error: BaseException) -> str:
    """The message a user sees for ``error`` (logged in full when it is not the user's to fix)."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, RefusedError):
        return f"⛔ {error}"
    if isinstance(error, UserError | BotError):
        return f"⚠️ {error}"
    if isinstance(error, app_commands.CheckFailure):
        return "⛔ you may not use this command here"
    if isinstance(error, app_commands.TransformerError):
        return f"⚠️ {error}"
    reference = secrets.token_hex(4)
    log.error("command failed (reference %s)", reference, exc_info=error)
    return f"💥 something went wrong on our side; the admins can look it up as reference `{reference}`"
