"""Whole databases: a scratch database for migration round trips and benchmarks (the role needs CREATEDB).

Destructive work (rolling every migration back, a million synthetic runs, dropping an index) happens in a
database of its own, never in the one a running gateway or another engineer uses."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gateway.core.errors import StoreError
from gateway.store.base import TRANSIENT, translate

_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,30}")


def with_database(dsn: str, database: str) -> str:
    """``dsn`` with its database name replaced (user, password, host and options unchanged)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@asynccontextmanager
async def scratch_database(dsn: str, prefix: str = "scratch") -> AsyncIterator[str]:
    """Create an empty database named ``<prefix>_<random>`` next to ``dsn``'s, yield its DSN, and drop it
    at the end (its open connections are closed first), whatever happened in between."""
    if not _PREFIX.fullmatch(prefix):
        raise StoreError(f"scratch database prefix {prefix!r}: lower-case letters, digits and _")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"  # an identifier: cannot be a parameter, so built from these
    await _admin(dsn, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(dsn, name)
    finally:
        await _drop(dsn, name)


async def _drop(dsn: str, name: str, tries: int = 20) -> None:
    """Drop a scratch database. FORCE ends the role's own connections to it, but not an autovacuum worker
    that PostgreSQL started there (a superuser's process: "must be a member of the role whose process is
    being terminated"); that worker is done in moments, so the drop is tried again."""
    for attempt in range(tries):
        try:
            await _admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', translated=False)
            return
        except asyncpg.InsufficientPrivilegeError as exc:
            if attempt == tries - 1:
                raise translate(exc) from exc
            await asyncio.sleep(0.25)


async def _admin(dsn: str, statement: str, *, translated: bool = True) -> None:
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
    except (asyncpg.PostgresError, *TRANSIENT) as exc:
        if not translated and isinstance(exc, asyncpg.InsufficientPrivilegeError):
            raise
        raise translate(exc) from exc
