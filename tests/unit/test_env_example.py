""".env.example lists every setting of the gateway and the bot, with its description and its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from bot.settings import BotSettings
from gateway.config.settings import REPO_ROOT, Settings

EXAMPLE = REPO_ROOT / ".env.example"
# settings named in the file only to say they are no longer read
RETIRED = {"GATEWAY_DISCORD_ADMIN_ROLE"}
_ASSIGNMENT = re.compile(r"^# (GATEWAY_[A-Z0-9_]+)=(.*)$")


def _fields() -> dict[str, FieldInfo]:
    classes: list[type[BaseSettings]] = [Settings, BotSettings]
    return {
        f"{cls.model_config.get('env_prefix', '')}{name}".upper(): field
        for cls in classes
        for name, field in cls.model_fields.items()
    }


def _assignments() -> dict[str, tuple[str, str]]:
    """Each commented-out `# NAME=value` line: (value, the comment lines just above it)."""
    lines = EXAMPLE.read_text().splitlines()
    found: dict[str, tuple[str, str]] = {}
    for index, line in enumerate(lines):
        if match := _ASSIGNMENT.match(line):
            above = []
            for previous in reversed(lines[:index]):
                if not previous.startswith("# ") or _ASSIGNMENT.match(previous):
                    break
                above.append(previous[2:])
            found[match[1]] = (match[2], " ".join(reversed(above)))
    return found


def _shown(default: object) -> str:
    if default is None or default is PydanticUndefined or isinstance(default, Path):
        return ""  # unset, or a default that depends on the machine: the comment says what it is
    return str(default).lower() if isinstance(default, bool) else str(default)


def test_every_setting_is_listed() -> None:
    listed = _assignments()
    text = EXAMPLE.read_text()
    missing = [name for name in _fields() if name not in listed and not (name in RETIRED and name in text)]
    assert not missing, (
        f"add to .env.example, with its description above it: {', '.join(f'# {m}=' for m in missing)}"
    )


def test_nothing_listed_is_unknown() -> None:
    unknown = sorted(set(_assignments()) - set(_fields()))
    assert not unknown, f".env.example names settings that do not exist: {', '.join(unknown)}"


@pytest.mark.parametrize("name", sorted(set(_fields()) - RETIRED))
def test_each_shows_its_default_and_description(name: str) -> None:
    field = _fields()[name]
    value, comment = _assignments()[name]
    assert value == _shown(field.default), (
        f"{name}: .env.example shows {value!r}, the default is {field.default!r}"
    )
    assert field.description, f"{name} has no description"
    # the description may be wrapped over several lines, and followed by more words on the default
    assert " ".join(comment.split()).startswith(" ".join(field.description.split())), name
