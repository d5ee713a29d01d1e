"""Reads through storage.rows, in both dialects: a statement is rendered once per shape and
reused, so calls of the same shape with other values must still get their own rows, totals,
search and order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from tortoise.context import TortoiseContext

from storage.db import migrate_db, tortoise_config
from storage.models import Role, User
from storage.rows import Select, count_rows, select_page, select_rows
from tests.storage.test_migrations import empty_database_url  # noqa: F401 (fixture)

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIELDS = ("id", "email", "role", "is_active", "last_login_at", "created_at")
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


@pytest.fixture
async def users(empty_database_url):  # noqa: F811
    await migrate_db(empty_database_url)
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(empty_database_url))
        # 6 admins, 4 viewers; every third never logged in; one name with LIKE wildcards.
        for index in range(10):
            await User.create(
                email=f"user{index}@example.com" if index != 7 else "odd_50%@example.com",
                password_hash="x",
                role=Role.ADMIN if index < 6 else Role.VIEWER,
                is_active=index % 2 == 0,
                last_login_at=None if index % 3 == 0 else T0 + timedelta(hours=index),
            )
        yield


def _select(**kwargs) -> Select:
    return Select(User, FIELDS, **kwargs)


async def test_the_same_shape_with_other_values_gets_its_own_rows_and_total(users):
    for role, expected in ((Role.ADMIN, 6), (Role.VIEWER, 4), (Role.ADMIN, 6)):
        rows, total = await select_page(
            _select(where={"role": role}, order=("email",), limit=3, offset=1)
        )
        assert total == expected
        assert len(rows) == 3
        assert {row["role"] for row in rows} == {role.value}
    rows, total = await select_page(_select(where={"role": "viewer", "is_active": True}, limit=50))
    assert (total, len(rows)) == (2, 2)
    assert all(row["is_active"] is True for row in rows)


async def test_null_filters_are_part_of_the_shape(users):
    never, _ = await select_page(_select(where={"last_login_at__isnull": True}, limit=50))
    logged_in, _ = await select_page(_select(where={"last_login_at__isnull": False}, limit=50))
    assert len(never) == 4 and all(row["last_login_at"] is None for row in never)
    assert len(logged_in) == 6 and all(row["last_login_at"] is not None for row in logged_in)


async def test_search_is_case_insensitive_and_takes_wildcards_literally(users):
    search = ("email",)
    for q, expected in (("USER1@", 1), ("_50%", 1), ("%", 1), ("example", 10), ("nobody", 0)):
        rows, total = await select_page(_select(search=search, q=q, limit=50))
        assert total == len(rows) == expected, q


async def test_order_limit_offset_and_a_page_past_the_end(users):
    emails = [row["email"] for row in await select_rows(_select(order=("-email",)))]
    assert emails == sorted(emails, reverse=True)
    rows, total = await select_page(_select(order=("email",), limit=4, offset=8))
    assert [row["email"] for row in rows] == sorted(emails)[8:]
    assert total == 10
    rows, total = await select_page(_select(order=("email",), limit=4, offset=40))
    assert (rows, total) == ([], 10)
    assert await count_rows(_select(where={"role": Role.VIEWER})) == 4


async def test_values_are_what_the_api_serialises(users):
    [row] = await select_rows(_select(where={"email": "user1@example.com"}))
    model = await User.get(email="user1@example.com")
    assert row["id"] == str(model.id)
    assert _json(row["last_login_at"]) == b'"2026-01-02T04:04:05.123456Z"'
    assert _json(row["created_at"]) == _json(model.created_at)
    assert row["is_active"] is False
    # Columns with NULLs take the general path and serialise the same way.
    rows = await select_rows(_select(order=("email",)))
    assert [_json(row["last_login_at"]) for row in rows] == [
        _json(user.last_login_at) for user in await User.all().order_by("email")
    ]


def _json(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z)  # as json_response does
