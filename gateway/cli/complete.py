"""Shell completion of names (`gateway --install-completion` installs it): sites, GPU types, boards, tasks.

Completion runs on every TAB, so it reads the site YAML files as plain YAML (no validation, no service)
and touches the database only when completing a leaderboard, with a short timeout; any failure
completes nothing rather than print an error into the user's command line."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BOARD_TIMEOUT_S = 1.5
LOCAL_SITE = "local"  # gateway.sites.LOCAL_SITE_NAME, without loading the site models


def _matching(incomplete: str, names: Iterable[str]) -> list[str]:
    """The names that start with what was typed; a name with spaces or control characters cannot be one
    word on a command line, so it is left out."""
    return sorted(
        {name for name in names if name.startswith(incomplete) and name.isprintable() and " " not in name}
    )


def _settings_path(variable: str, field: str) -> Path:
    """A folder setting: the GATEWAY_ variable when set (what Settings would read first), else Settings."""
    value = os.environ.get(variable)
    if value:
        return Path(value).expanduser()
    from gateway.settings import Settings

    path: Path = getattr(Settings(), field)
    return path


def _site_files() -> list[dict[str, Any]]:
    """Every site YAML as parsed data; a file that does not parse is left out."""
    import yaml

    found = []
    with contextlib.suppress(OSError):
        for path in sorted(_settings_path("GATEWAY_SITES_DIR", "sites_dir").glob("*.yaml")):
            with contextlib.suppress(OSError, yaml.YAMLError, UnicodeDecodeError):
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    found.append(data)
    return found


def site_names(incomplete: str) -> list[str]:
    names = [str(site["name"]) for site in _site_files() if isinstance(site.get("name"), str)]
    return _matching(incomplete, [LOCAL_SITE, *names])


def gpu_types(incomplete: str) -> list[str]:
    types = [
        str(partition["gpu_type"])
        for site in _site_files()
        for partition in site.get("partitions") or []
        if isinstance(partition, dict) and isinstance(partition.get("gpu_type"), str)
    ]
    return _matching(incomplete, types)


def task_names(incomplete: str) -> list[str]:
    """Task folders in the tasks folder (by name), and paths as the shell completes them."""
    names: list[str] = []
    with contextlib.suppress(OSError):
        root = _settings_path("GATEWAY_TASKS_DIR", "tasks_dir")
        names = [d.name for d in root.iterdir() if (d / "task.yml").is_file()]
    return _matching(incomplete, names)


def board_names(incomplete: str) -> list[str]:
    """The leaderboards in the database, when GATEWAY_DATABASE_URL is set and it answers quickly."""
    try:
        import asyncio

        from gateway.settings import Settings

        dsn = Settings().database_dsn()
        if dsn is None:
            return []
        return _matching(incomplete, asyncio.run(_boards(dsn)))
    except Exception:  # completion says nothing: a traceback would land in the prompt
        return []


async def _boards(dsn: str) -> list[str]:
    import asyncio

    from gateway.store import Store

    async with asyncio.timeout(BOARD_TIMEOUT_S):
        store = await Store.connect(dsn, max_size=1)
        try:
            return [board.name for board in await store.list_leaderboards(include_hidden=True)]
        finally:
            await store.close()
