"""Transaction-scoped locks for invariants that span rows (e.g. "the first user is admin")."""

from __future__ import annotations

import zlib

from tortoise.backends.base.client import BaseDBAsyncClient


async def exclusive(conn: BaseDBAsyncClient, name: str) -> None:
    """Hold `name` until the transaction ends.

    PostgreSQL: an advisory transaction lock. SQLite: Tortoise serialises transactions on its
    single connection already, so there is nothing to take.
    """
    if conn.capabilities.dialect == "postgres":
        await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [zlib.crc32(name.encode())])
