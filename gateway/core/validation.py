"""Checks on what users type: names and free text, so the store keeps them verbatim or the user learns at
once what to change (UserError, never a database error). Uploaded code is checked by
gateway/service/intake.py."""

from __future__ import annotations

import re

from gateway.core.errors import UserError

MAX_NAME_CHARS = 200  # leaderboard and user names
MAX_DESCRIPTION_CHARS = 20_000  # a leaderboard's description (reference-kernels' longest is a few KiB)
MAX_REASON_CHARS = 500  # an admin's reason for draining a site
VISIBILITIES = ("public", "hidden")
JOINERS = "\u200c\u200d"  # zero-width non-joiner and joiner: format characters that names may hold
_JOINERS = dict.fromkeys(map(ord, JOINERS))
RUN_ID_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]{0,35}")  # a run id (a UUID) or its first characters
FULL_RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PUBLIC_SUBMISSION_ID = re.compile(r"[0-9a-f]{32}")  # submissions.public_id: 128 random bits, hex
BIGINT_MAX = 2**63 - 1  # PostgreSQL's bigint: the range of every numeric id the store keeps


def public_submission_key(submission: str | int, by_number: bool) -> str | int | None:
    """What a submission is looked up by: its public id (32 hex digits), or, where ``by_number`` (admins),
    its number too. None for anything else (it names no submission: 'not found', never an error of the
    database)."""
    text = str(submission).strip().lower()
    if PUBLIC_SUBMISSION_ID.fullmatch(text):
        return text
    if by_number and text.isascii() and text.isdigit() and 0 < int(text) <= BIGINT_MAX:
        return int(text)
    return None


def shown(value: str, limit: int = 80) -> str:
    """A user's string for an error message: quoted and escaped (no markup, no control characters, no
    lone surrogates from undecodable bytes), cut to ``limit`` characters."""
    return f"{value[:limit]!r}{'…' if len(value) > limit else ''}"


def printable(text: str) -> bool:
    """Printable in Python's sense (no control or format characters, no lone surrogates, no separators
    but the space), except that zero-width joiners (emoji sequences, Persian and Indic scripts) pass."""
    return text.translate(_JOINERS).isprintable()


def check_name(what: str, name: str, limit: int = MAX_NAME_CHARS) -> None:
    """A name (of a user, a leaderboard) is one line of printable characters, not blank, at most
    ``limit`` characters: no control characters (bidi overrides included), no undecodable bytes.
    UserError otherwise."""
    if not name.translate(_JOINERS).strip() or len(name) > limit or not printable(name):
        raise UserError(
            f"{what} {shown(name)} ({len(name)} characters) cannot be used: one line of printable "
            f"characters, not blank, at most {limit}"
        )


DISCORD_ACCOUNT = re.compile(r"discord:[0-9]{1,20}")


def check_account(name: str) -> None:
    """An account name (users.name): a name (``check_name``); one in Discord's namespace is exactly
    'discord:<user id>', the account of that Discord user."""
    check_name("user name", name)
    if name.startswith("discord:") and not DISCORD_ACCOUNT.fullmatch(name):
        raise UserError(f"user name {shown(name)}: names starting 'discord:' are 'discord:<Discord user id>'")


def check_text(what: str, text: str, limit: int) -> None:
    """Free text (a description, a reason): lines of printable characters and tabs, at most ``limit``
    characters. UserError otherwise."""
    if len(text) > limit:
        raise UserError(f"{what} is {len(text)} characters long; at most {limit}")
    bad = next((c for c in text if not printable(c) and c not in "\n\t"), None)
    if bad is not None:
        raise UserError(f"{what} holds the character {bad!r}: only printable text, newlines and tabs")
