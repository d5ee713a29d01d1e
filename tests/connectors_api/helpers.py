"""Real sources for the connector and schema API tests: uniquely named PostgreSQL and MariaDB
databases, a local HTTP server serving paginated JSON, silent and closed ports, and a TCP
relay (the platform's own PostgreSQL is off limits to connectors in scaled mode, so there a
relay on another port stands in for "a team's database on this host")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncmy
import asyncpg
import httpx
import polars as pl

from engine.datasets import DatasetStore
from tests.servers import free_port

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
MYSQL_HOST, MYSQL_PORT, MYSQL_USER = "127.0.0.1", 3306, "root"
API_TOKEN = "api-token-for-tests"
PAGE_SIZE = 5


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


# --- PostgreSQL and MariaDB -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    name = unique_name("capi_pg")
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield name
    finally:
        admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def mysql_execute(sql: str, database: str | None = None) -> None:
    conn = await asyncmy.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_USER,
        password="",
        database=database,
        autocommit=True,
    )
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(sql)
    finally:
        await conn.ensure_closed()


@contextlib.asynccontextmanager
async def mysql_database() -> AsyncIterator[str]:
    name = unique_name("capi_my")
    await mysql_execute(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        await mysql_execute(f"DROP DATABASE IF EXISTS `{name}`")


# --- network stand-ins ------------------------------------------------------------------------


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """Connections complete (the kernel's backlog accepts them) but never get a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


@contextlib.asynccontextmanager
async def tcp_relay(target_host: str, target_port: int) -> AsyncIterator[int]:
    """A local port that forwards every connection to target_host:target_port."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


# --- a paginated JSON API ---------------------------------------------------------------------


def api_records(count: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": f"item {i}",
            "price": 1.5 * i,
            "updated_at": f"2026-01-{i:02d}T10:00:00Z",
            "address": {"city": "Lyon" if i % 2 else "Porto", "zip": f"{69000 + i}"},
            "tags": ["a", "b"][: i % 3],
        }
        for i in range(1, count + 1)
    ]


class _ApiHandler(BaseHTTPRequestHandler):
    records: list[dict[str, Any]] = api_records()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/secure/items" and (
            self.headers.get("Authorization") != f"Bearer {API_TOKEN}"
        ):
            return self._send(401, {"error": "bad token"})
        if url.path in ("/items", "/secure/items"):
            page = int(query.get("page", 1))
            size = int(query.get("per_page", PAGE_SIZE))
            chunk = self.records[(page - 1) * size : page * size]
            return self._send(200, {"data": chunk, "page": page})
        return self._send(404, {"error": "not found"})

    def _send(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def json_api() -> Iterator[str]:
    """A local HTTP server with /items (page/per_page pagination, records under `data`) and
    /secure/items (the same, behind a bearer token). Yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def http_api_config(base_url: str, path: str = "items", **extra: Any) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "streams": [{"name": "items", "path": path, "records_path": "data", "primary_key": ["id"]}],
        "pagination": {
            "type": "page",
            "page_param": "page",
            "size_param": "per_page",
            "page_size": PAGE_SIZE,
        },
        **extra,
    }


# --- API calls --------------------------------------------------------------------------------


async def create_connector(
    client: httpx.AsyncClient, account, type_: str, config: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/connectors",
        headers=account.headers,
        json={"name": unique_name(type_), "type": type_, "config": config},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def connection_test(client, account, type_: str, config: dict[str, Any], **extra) -> dict:
    response = await client.post(
        "/api/v1/connectors/test",
        headers=account.headers,
        json={"type": type_, "config": config, **extra},
    )
    assert response.status_code == 200, response.text
    return response.json()


# --- files under the server's DATA_DIR ----------------------------------------------------------


def make_sqlite(data_dir: Path) -> str:
    """A SQLite database under the server's DATA_DIR; returns its relative path."""
    relative = f"sources/{unique_name('lite')}.sqlite3"
    path = data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, at TEXT);
            INSERT INTO events (kind, at) VALUES ('open', '2026-01-01'), ('close', '2026-01-02');
            """
        )
    return relative


def make_csv(data_dir: Path) -> str:
    relative = f"files/{unique_name('sales')}.csv"
    path = data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("order_id,amount,ordered_at\n1,9.5,2026-01-01\n2,12.0,2026-01-02\n")
    return relative


async def make_dataset(data_dir: Path) -> str:
    name = unique_name("ds")
    staged = DatasetStore(data_dir / "datasets").begin_version(name, "replace")
    await staged.write(pl.DataFrame({"sku": ["a", "b", "c"], "qty": [1, 2, 3]}))
    await staged.commit()
    return name
