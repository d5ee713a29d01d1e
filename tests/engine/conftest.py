"""Real database servers for engine tests: a fresh, uniquely named database per test on the
local PostgreSQL and MariaDB, dropped afterwards, and a few network fixtures."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncmy
import asyncpg
import pytest

from engine.connectors.base import ConnectorContext

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
MYSQL_HOST, MYSQL_PORT, MYSQL_USER = "127.0.0.1", 3306, "root"


def unique_database_name() -> str:
    return f"test_{uuid.uuid4().hex}"


@pytest.fixture
def ctx(tmp_path: Path) -> ConnectorContext:
    return ConnectorContext(data_dir=tmp_path)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port whose connections complete (the kernel accepts them into the backlog) but
    never receive a byte: what a firewall black hole or a hung server looks like."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


# --- PostgreSQL --------------------------------------------------------------------------------


async def _pg_admin() -> asyncpg.Connection:
    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")


@pytest.fixture
async def pg_config() -> AsyncIterator[dict[str, Any]]:
    name = unique_database_name()
    admin = await _pg_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield {
        "host": PG_HOST,
        "port": PG_PORT,
        "database": name,
        "user": PG_USER,
        "password": "",
        "sslmode": "disable",
        "connect_timeout": 5,
    }
    admin = await _pg_admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg(pg_config: dict[str, Any]) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, to set up and inspect tables."""
    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=pg_config["database"]
    )
    yield conn
    await conn.close()


# --- MariaDB / MySQL ---------------------------------------------------------------------------


async def _mysql_admin(database: str | None = None) -> asyncmy.Connection:
    return await asyncmy.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_USER,
        password="",
        database=database,
        autocommit=True,
    )


@pytest.fixture
async def mysql_config() -> AsyncIterator[dict[str, Any]]:
    name = unique_database_name()
    admin = await _mysql_admin()
    try:
        async with admin.cursor() as cursor:
            await cursor.execute(f"CREATE DATABASE `{name}`")
    finally:
        await admin.ensure_closed()
    yield {
        "host": MYSQL_HOST,
        "port": MYSQL_PORT,
        "database": name,
        "user": MYSQL_USER,
        "password": "",
        "tls_mode": "disable",
        "connect_timeout": 5,
    }
    admin = await _mysql_admin()
    try:
        async with admin.cursor() as cursor:
            await cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        await admin.ensure_closed()


class MySQLSession:
    """Small helper over a direct connection: run statements, fetch rows."""

    def __init__(self, conn: asyncmy.Connection) -> None:
        self.conn = conn

    async def execute(self, *statements: str) -> None:
        async with self.conn.cursor() as cursor:
            for statement in statements:
                await cursor.execute(statement)

    async def fetch(self, query: str) -> list[tuple[Any, ...]]:
        async with self.conn.cursor() as cursor:
            await cursor.execute(query)
            return list(await cursor.fetchall())


@pytest.fixture
async def mysql(mysql_config: dict[str, Any]) -> AsyncIterator[MySQLSession]:
    conn = await _mysql_admin(mysql_config["database"])
    yield MySQLSession(conn)
    await conn.ensure_closed()
