"""Reads and transactions, as the API depends on them in both modes: a read outside a
transaction never waits for an open write transaction and never sees its uncommitted rows; a
read inside a transaction sees the transaction's own writes; a commit is visible to the next
read at once (read-after-write); a transaction cancelled at any point (a client hanging up)
never keeps the database from other writers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from tortoise.context import TortoiseContext

from storage.db import SQLITE_READERS, migrate_db, tortoise_config, transaction
from storage.models import User
from tests.servers import MODE
from tests.storage.test_migrations import empty_database_url  # noqa: F401 (fixture)

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def database(empty_database_url):  # noqa: F811
    await migrate_db(empty_database_url)
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(empty_database_url))
        yield ctx


def _user(email: str) -> User:
    return User(email=email, password_hash="x")


async def test_a_read_outside_a_transaction_neither_waits_for_it_nor_sees_its_rows(database):
    await _user("committed@example.com").save()
    inside_can_see = asyncio.Event()
    outside_has_read = asyncio.Event()

    async def writer() -> bool:
        async with transaction() as conn:
            await _user("pending@example.com").save(using_db=conn)
            seen_inside = await User.filter(email="pending@example.com").exists()
            inside_can_see.set()
            # Stay open until the outside read is done: it must not need this to end.
            await asyncio.wait_for(outside_has_read.wait(), 5)
            return seen_inside

    writing = asyncio.create_task(writer())
    await inside_can_see.wait()
    outside = await asyncio.wait_for(User.all().values_list("email", flat=True), 5)
    outside_has_read.set()
    assert await writing is True
    assert outside == ["committed@example.com"]
    # Committed: the very next read, on whichever connection, sees it.
    assert await User.filter(email="pending@example.com").exists()


async def test_a_rolled_back_transaction_leaves_nothing_for_readers(database):
    with pytest.raises(RuntimeError):
        async with transaction() as conn:
            await _user("gone@example.com").save(using_db=conn)
            raise RuntimeError("undo")
    assert not await User.filter(email="gone@example.com").exists()


@pytest.mark.skipif(MODE != "embedded", reason="SQLite readers exist in embedded mode only")
async def test_sqlite_readers_refuse_writes(database):
    for name in SQLITE_READERS:
        with pytest.raises(Exception, match=r"readonly|read-only|query_only"):
            await database.connections.get(name).execute_query(
                "INSERT INTO users (id, email, password_hash, full_name, role, is_active,"
                " token_generation, created_at, updated_at) VALUES"
                " ('x', 'r@example.com', 'x', '', 'viewer', 1, 0, '2026-01-01', '2026-01-01')"
            )
    assert not await User.filter(email="r@example.com").exists()


async def test_transactions_cancelled_at_any_point_leave_the_writer_free(database):
    finished = []
    for attempt in range(40):

        async def write(n: int = attempt) -> None:
            async with transaction() as conn:
                await _user(f"cancelled{n}@example.com").save(using_db=conn)
            finished.append(n)

        task = asyncio.create_task(write())
        for _ in range(attempt % 5):  # cancel before, during and after BEGIN, the insert...
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Before the fix, a cancel during BEGIN kept the writer lock (or a pooled connection)
        # forever, and this write waited for it.
        await asyncio.wait_for(_user(f"after{attempt}@example.com").save(), 5)
    for n in finished:
        assert await User.filter(email=f"cancelled{n}@example.com").exists()
    assert await User.filter(email__startswith="after").count() == 40
