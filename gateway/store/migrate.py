"""Applies the yoyo migrations (migrations/, shipped with the gateway: gateway.core.resources) and rolls them
back (each with its ``.rollback.sql``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.core import resources
from gateway.core.errors import StoreError

BASE = "base"  # the revision before the first migration: `rollback --to base` undoes them all


def _yoyo_url(database_url: str) -> str:
    # yoyo 9 reads plain postgresql:// with psycopg2 (the driver we install); it refuses postgres://.
    if database_url.startswith("postgres://"):
        return "postgresql://" + database_url[len("postgres://") :]
    return database_url


@contextmanager
def _yoyo(database_url: str, migrations_dir: Path | None, what: str) -> Iterator[tuple[Any, Any]]:
    """yoyo's backend (locked against concurrent migrators) and the migrations; errors become StoreError."""
    from yoyo import get_backend, read_migrations

    migrations_dir = migrations_dir or resources.migrations_dir()
    backend = None
    try:
        backend = get_backend(_yoyo_url(database_url))
        with backend.lock():
            yield backend, read_migrations(str(migrations_dir))
    except StoreError:
        raise
    except Exception as exc:  # yoyo and psycopg2 raise many unrelated types
        # the message may hold the URL and so the password: name the type only
        raise StoreError(f"could not {what} migrations from {migrations_dir}: {type(exc).__name__}") from exc
    finally:
        if backend is not None:
            backend.connection.close()


def apply_migrations(database_url: str, migrations_dir: Path | None = None, upto: str | None = None) -> int:
    """Apply every pending migration (or those up to and including revision ``upto``); return how many
    were applied. Synchronous (yoyo is)."""
    with _yoyo(database_url, migrations_dir, "apply") as (backend, migrations):
        if upto is not None:
            ids = [m.id for m in migrations]
            if upto not in ids:
                raise StoreError(f"no migration {upto!r}; there are: {', '.join(ids)}")
            migrations = migrations.filter(lambda m: ids.index(m.id) <= ids.index(upto))
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
        return len(pending)


def applied_migrations(database_url: str, migrations_dir: Path | None = None) -> list[str]:
    """The ids of the migrations applied to the database, oldest first."""
    with _yoyo(database_url, migrations_dir, "read") as (backend, migrations):
        return [m.id for m in reversed(list(backend.to_rollback(migrations)))]


def rollback_migrations(
    database_url: str, to: str | None = None, migrations_dir: Path | None = None
) -> list[str]:
    """Roll back applied migrations, newest first, each with its ``.rollback.sql`` in a transaction: the
    latest one (``to`` None), every one after revision ``to``, or all of them (``to`` = ``base``).
    Returns the ids rolled back. Rolling back drops what the migrations added, data included."""
    with _yoyo(database_url, migrations_dir, "roll back") as (backend, migrations):
        applied = list(backend.to_rollback(migrations))  # newest first
        ids = [m.id for m in applied]
        if to is None:
            chosen = applied[:1]
        elif to == BASE:
            chosen = applied
        elif to in ids:
            chosen = applied[: ids.index(to)]
        else:
            known = [m.id for m in migrations]
            raise StoreError(
                f"revision {to!r} is not applied; applied: {', '.join(reversed(ids)) or 'none'}"
                if to in known
                else f"no migration {to!r}; there are: {', '.join(known)} (or {BASE})"
            )
        backend.rollback_migrations(migrations.replace(chosen))
        return [m.id for m in chosen]
