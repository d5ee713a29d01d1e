"""Real sources for the connector API tests, one of each per module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from tests.connectors_api.helpers import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    json_api,
    mysql_database,
    mysql_execute,
    postgres_database,
    tcp_relay,
)
from tests.servers import MODE


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pg_database() -> AsyncIterator[str]:
    async with postgres_database() as name:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=name)
        try:
            await conn.execute(
                """
                CREATE TABLE customers (
                    id integer PRIMARY KEY,
                    email text NOT NULL,
                    balance numeric(12, 2),
                    updated_at timestamptz NOT NULL DEFAULT now()
                );
                INSERT INTO customers (id, email, balance)
                SELECT g, 'c' || g || '@example.com', g * 10.5 FROM generate_series(1, 30) g;
                ANALYZE customers;
                """
            )
        finally:
            await conn.close()
        yield name


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pg_endpoint() -> AsyncIterator[tuple[str, int]]:
    """Where the server reaches the test PostgreSQL. In scaled mode 127.0.0.1:5432 is the
    platform's own database, which connectors must never reach: go through a relay."""
    if MODE != "scaled":
        yield PG_HOST, PG_PORT
        return
    async with tcp_relay(PG_HOST, PG_PORT) as port:
        yield "127.0.0.1", port


@pytest.fixture
def pg_config(pg_database: str, pg_endpoint: tuple[str, int]) -> dict[str, Any]:
    host, port = pg_endpoint
    return {
        "host": host,
        "port": port,
        "database": pg_database,
        "user": PG_USER,
        "password": "",
        "sslmode": "disable",
        "connect_timeout": 5,
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mysql_db() -> AsyncIterator[str]:
    async with mysql_database() as name:
        await mysql_execute(
            "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(100) NOT NULL, "
            "total DECIMAL(10,2), created_at DATETIME NOT NULL)",
            name,
        )
        await mysql_execute(
            "INSERT INTO orders VALUES (1, 'ann', 10.00, '2026-01-01 10:00:00'), "
            "(2, 'bob', 20.50, '2026-01-02 10:00:00'), (3, 'cyd', NULL, '2026-01-03 10:00:00')",
            name,
        )
        yield name


@pytest.fixture
def mysql_config(mysql_db: str) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": 3306,
        "database": mysql_db,
        "user": "root",
        "password": "",
        "tls_mode": "disable",
        "connect_timeout": 5,
    }


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with json_api() as url:
        yield url
