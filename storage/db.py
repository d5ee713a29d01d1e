"""Database set-up for both dialects: the Tortoise config, init/close and migrations."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import cycle
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.connection import get_connection, get_connections
from tortoise.migrations.api import migrate as run_migrations
from tortoise.models import Model
from tortoise.transactions import in_transaction

MODELS_MODULE = "storage.models"
MIGRATIONS_MODULE = "migrations"
# Tortoise opens SQLite in WAL mode. With WAL, synchronous=NORMAL is the setting SQLite
# recommends: commits stop waiting for an fsync each (the WAL is synced at checkpoints), and
# the database stays consistent after a crash; only a power loss or OS crash can lose the
# last commits. A pragma given in DATABASE_URL (e.g. ?synchronous=FULL) wins.
SQLITE_PRAGMAS = {"synchronous": "NORMAL"}
WRITER = "default"
# Read-only SQLite connections beside the writer. Tortoise gives a SQLite database one
# connection and holds its lock for a whole transaction, so without them every API read waits
# behind the bookkeeping transactions of running pipelines and behind every other read. WAL
# lets readers run beside the writer, each on its own thread; two match the 2-core target.
SQLITE_READERS = ("reader0", "reader1")


def tortoise_config(database_url: str, *, readers: bool = True) -> dict[str, Any]:
    """PostgreSQL: one pooled connection. A SQLite file: the writer plus `SQLITE_READERS`
    (unless `readers` is false, as for migrations), reads routed by `SqliteReadRouter`."""
    url = _normalise_url(database_url)
    connections = {WRITER: url}
    if readers and _is_sqlite_file(url):
        connections |= {name: _read_only(url) for name in SQLITE_READERS}
    return {
        "connections": connections,
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": WRITER,
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "routers": [SqliteReadRouter] if len(connections) > 1 else [],
        "use_tz": True,
        "timezone": "UTC",
    }


_readers = cycle(SQLITE_READERS)


class SqliteReadRouter:
    """Sends a read to a reader connection unless it runs inside a transaction, where it must
    see the transaction's own writes. A reader sees everything committed before the read
    starts (each statement is its own read transaction), so read-after-write holds too."""

    def db_for_read(self, model: type[Model]) -> str | None:
        return None if _in_transaction(get_connection(WRITER)) else next(_readers)

    def db_for_write(self, model: type[Model]) -> str | None:
        return None


def _in_transaction(writer: BaseDBAsyncClient) -> bool:
    return isinstance(writer, TransactionalDBClient)


def read_connection() -> BaseDBAsyncClient:
    """Where a hand-made read runs, as SqliteReadRouter decides for the ORM's (without the
    generic router machinery around it, which costs more than the decision)."""
    writer = get_connection(WRITER)
    if _in_transaction(writer) or SQLITE_READERS[0] not in get_connections().db_config:
        return writer
    return get_connection(next(_readers))


READS_IN_FLIGHT_PER_READER = 3
# Per reader client (Tortoise makes new clients when the event loop changes, as in tests).
_read_slots: weakref.WeakKeyDictionary[BaseDBAsyncClient, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def fetch_records(connection: BaseDBAsyncClient, statement: str, params: list[Any]) -> Any:
    """The records of a read statement. On a SQLite reader it goes straight to the driver,
    without the wrappers Tortoise puts around it, which cost more than a page query, and with
    up to READS_IN_FLIGHT_PER_READER statements queued on the reader's thread instead of one:
    the thread goes from one statement to the next without waiting for the event loop. Not
    more: a reader's thread with dozens queued holds the GIL against the event loop (at 50
    connections, unbounded, p99 went from 55 to 200 ms)."""
    driver = getattr(connection, "_connection", None)
    if driver is not None and connection.connection_name in SQLITE_READERS:
        slots = _read_slots.get(connection)
        if slots is None:
            slots = _read_slots[connection] = asyncio.Semaphore(READS_IN_FLIGHT_PER_READER)
        async with slots:
            return await driver.execute_fetchall(statement, params)
    _, records = await connection.execute_query(statement, params)
    return records


@asynccontextmanager
async def transaction() -> AsyncIterator[TransactionalDBClient]:
    """A transaction on the writer: `in_transaction()` made safe to cancel while it begins.

    Tortoise's transaction contexts take the SQLite writer lock (or a pooled PostgreSQL
    connection) before BEGIN but give it back only in `__aexit__`, which never runs when
    `__aenter__` is interrupted. A request cancelled while BEGIN runs (its client hung up)
    kept the lock for good: every later write waited forever and the server could not stop.
    """
    context = in_transaction(WRITER)
    try:
        conn = await context.__aenter__()
    except BaseException as exc:
        if getattr(context, "token", None) is not None:  # set once the lock or connection is held
            with contextlib.suppress(Exception):
                await context.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    try:
        yield conn
    except BaseException as exc:
        await context.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await context.__aexit__(None, None, None)


def _normalise_url(url: str) -> str:
    # Accept the spellings operators use; Tortoise knows "postgres://" and "sqlite://".
    parts = urlsplit(url)
    if parts.scheme in {"postgresql", "postgresql+asyncpg"}:
        return "postgres" + url[len(parts.scheme) :]
    if parts.scheme == "sqlite":
        return _with_sqlite_pragmas(url, parse_qs(parts.query))
    return url


def _with_sqlite_pragmas(url: str, given: dict[str, list[str]]) -> str:
    # Tortoise turns the query parameters of a sqlite:// URL into PRAGMAs at connect time.
    missing = [f"{name}={value}" for name, value in SQLITE_PRAGMAS.items() if name not in given]
    if not missing:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(missing)


def _is_sqlite_file(url: str) -> bool:
    return url.startswith("sqlite://") and ":memory:" not in url


def _read_only(url: str) -> str:
    # WAL first: a reader may connect before the writer has switched a new file to WAL.
    return url + ("&" if "?" in url else "?") + "journal_mode=WAL&query_only=ON"


def dialect(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


async def init_db(database_url: str) -> None:
    # Global fallback: request handlers run in tasks that do not inherit the start-up
    # listener's context, so the ORM context must be process-wide.
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def migrate_db(database_url: str) -> None:
    """Apply every pending migration (idempotent), then release the connections it opened."""
    try:
        await run_migrations(config=tortoise_config(database_url, readers=False))
    finally:
        await Tortoise.close_connections()


async def close_db() -> None:
    await Tortoise.close_connections()
