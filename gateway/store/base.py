"""The pool, error translation and retries that every part of the store shares."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import asyncpg

from gateway.core.errors import StoreError

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

# Errors after which the same statement may succeed on a fresh connection: the server restarted, is
# starting, or the connection dropped. Anything else (a constraint, a syntax error) is final.
TRANSIENT = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,
)
# A transaction PostgreSQL rolled back to break a deadlock or a serialisation conflict: running it again
# is what the server asks for, and every retried operation is safe to repeat.
ROLLED_BACK = (asyncpg.exceptions.TransactionRollbackError,)
RECONNECT_FOR_S = 120.0  # how long an operation keeps retrying through a PostgreSQL restart


class TransientStoreError(StoreError):
    """The database could not be reached, or rolled the transaction back (a deadlock); the same call may
    succeed later."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection back in the pool needs reset: nothing. asyncpg's default sends a reset query
    (advisory unlock, CLOSE ALL, UNLISTEN *, RESET ALL) at every release, a second round trip for every
    one-statement operation; the store sets no session state, takes only transaction-scoped advisory locks,
    opens cursors only in transactions and LISTENs on connections of its own. (An open transaction is
    still rolled back by the pool itself.)"""


def retried(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Run an idempotent store operation again, with backoff, while the database is unreachable.

    Only for operations that are safe to repeat after a commit whose acknowledgement was lost."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        deadline = time.monotonic() + RECONNECT_FOR_S
        delay = 0.1
        while True:
            try:
                return await method(*args, **kwargs)
            except TransientStoreError as exc:
                if time.monotonic() + delay > deadline or getattr(args[0], "closed", False):
                    raise  # out of time, or the store was closed under the call: retrying cannot help
                log.warning("%s; retrying %s in %.1f s", exc, method.__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    return wrapper


def translate(exc: BaseException) -> StoreError:
    # the DSN holds a password: messages name the error, never the DSN
    what = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TRANSIENT):
        return TransientStoreError(f"database unreachable: {what}")
    if isinstance(exc, ROLLED_BACK):
        return TransientStoreError(f"transaction rolled back by the database: {what}")
    return StoreError(f"database error: {what}")


class StoreBase:
    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self.closed = False

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = 10) -> Any:
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=max_size, init=_init_connection, reset=_keep_session
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
        return cls(pool, dsn)

    @retried
    async def ping(self) -> None:
        """One round trip to PostgreSQL (health checks)."""
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        self.closed = True
        await self._pool.close()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (asyncpg.PostgresError, *TRANSIENT) as exc:
            raise translate(exc) from exc

    async def _listener(self) -> asyncpg.Connection:
        """A connection of its own (not from the pool) for LISTEN: it lives as long as its follower."""
        try:
            return await asyncpg.connect(self._dsn)
        except (asyncpg.PostgresError, *TRANSIENT) as exc:
            raise translate(exc) from exc
