"""Shell completion of names (`gateway --install-completion` installs it): sites, GPU types, boards, tasks.

Completion runs on every TAB, so it reads the site YAML files as plain YAML (no validation, no service)
and touches the database only when completing a leaderboard, with a short timeout; any failure
completes nothing rather than print an error into the user's command line. The facts read from the
site files are kept in the CLI's cache folder until a file changes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BOARD_TIMEOUT_S = 1.5
LOCAL_SITE = "local"  # gateway.config.sites.LOCAL_SITE_NAME, without loading the site models


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
    from gateway.config.settings import Settings

    path: Path = getattr(Settings(), field)
    return path


def _site_facts(data: Any) -> dict[str, Any] | None:
    """What completion reads from a site file: its name, its partitions' GPU types (JSON, for the cache)."""
    if not isinstance(data, dict):
        return None
    partitions = data.get("partitions")
    return {
        **({"name": data["name"]} if isinstance(data.get("name"), str) else {}),
        "partitions": [
            {"gpu_type": p["gpu_type"]}
            for p in (partitions if isinstance(partitions, list) else [])
            if isinstance(p, dict) and isinstance(p.get("gpu_type"), str)
        ],
    }


def _file_key(path: Path) -> list[Any] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return [path.name, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def _site_files() -> list[dict[str, Any]]:
    """Every site YAML's facts; a file that does not parse is left out. Loading PyYAML costs more than the
    rest of a TAB press, so the facts are kept in the CLI's cache (gateway.cli.fast_cache) and read again only
    when a file in the folder is new, gone or changed (its size, times or inode)."""
    from gateway.cli import fast_cache

    try:
        folder = _settings_path("GATEWAY_SITES_DIR", "sites_dir")
        paths = sorted(folder.glob("*.yaml"))
    except OSError:
        return []
    keys = [_file_key(path) for path in paths]
    cache = os.path.join(fast_cache.cache_dir(), "sites.json")
    kept = fast_cache.read_json(cache)
    if isinstance(kept, dict) and kept.get("folder") == str(folder) and kept.get("keys") == keys:
        facts = kept.get("facts")
        if isinstance(facts, list) and all(_site_facts(f) == f for f in facts):  # nothing else in a cache
            return facts
    import yaml

    found = []
    for path in paths:
        with contextlib.suppress(OSError, yaml.YAMLError, UnicodeDecodeError):
            site = _site_facts(yaml.safe_load(path.read_text(encoding="utf-8")))
            if site is not None:
                found.append(site)
    if None not in keys:
        fast_cache.write_json(cache, {"folder": str(folder), "keys": keys, "facts": found})
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

        from gateway.config.settings import Settings

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
