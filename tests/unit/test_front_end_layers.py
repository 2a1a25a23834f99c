"""The bot, the HTTP API and the web pages are front ends: they call the service, never the store, a
transport, a backend or a driver."""

from __future__ import annotations

import ast

import pytest

from gateway.config.settings import REPO_ROOT

FORBIDDEN = (
    "gateway.store",
    "gateway.running.transport",
    "gateway.running.backends",
    "gateway.service.queue_worker",
    "asyncpg",
    "asyncssh",
)


def imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize(
    ("package", "at_least"), [("bot", 8), ("gateway/http/api", 9), ("gateway/http/web", 2)]
)
def test_front_ends_hold_no_database_or_ssh_logic(package: str, at_least: int) -> None:
    files = sorted((REPO_ROOT / package).rglob("*.py"))
    assert len(files) >= at_least
    for path in files:
        source = path.read_text()
        bad = {m for m in imported_modules(source) if m.startswith(FORBIDDEN)}
        assert not bad, f"{path.relative_to(REPO_ROOT)} imports {sorted(bad)}"
        assert "SELECT " not in source and "INSERT " not in source, path
