"""Applies the yoyo migrations in migrations/ (forward only; rollbacks live beside each migration)."""

from __future__ import annotations

from pathlib import Path

from gateway.errors import StoreError
from gateway.settings import REPO_ROOT

MIGRATIONS_DIR = REPO_ROOT / "migrations"


def _yoyo_url(database_url: str) -> str:
    # yoyo 9 reads plain postgresql:// with psycopg2 (the driver we install); it refuses postgres://.
    if database_url.startswith("postgres://"):
        return "postgresql://" + database_url[len("postgres://") :]
    return database_url


def apply_migrations(database_url: str, migrations_dir: Path = MIGRATIONS_DIR) -> int:
    """Apply every pending migration; return how many were applied. Synchronous (yoyo is)."""
    from yoyo import get_backend, read_migrations

    try:
        backend = get_backend(_yoyo_url(database_url))
        migrations = read_migrations(str(migrations_dir))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return len(pending)
    except Exception as exc:  # yoyo and psycopg2 raise many unrelated types
        # the message may hold the URL and so the password: name the type only
        raise StoreError(f"could not apply migrations from {migrations_dir}: {type(exc).__name__}") from exc
