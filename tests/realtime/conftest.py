"""Helpers for the WebSocket tests: a real `websockets` client against a real server."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import websockets

from tests.servers import MODE, ServerProcess

Message = dict[str, Any]


def ws_url(server: ServerProcess, query: str = "") -> str:
    return server.base_url.replace("http://", "ws://") + "/api/v1/ws" + query


@asynccontextmanager
async def open_socket(server: ServerProcess, token: str | None, **kwargs: Any):
    subprotocols = ["bearer", token] if token else None
    async with websockets.connect(
        ws_url(server), subprotocols=subprotocols, open_timeout=10, **kwargs
    ) as ws:
        yield ws


async def send(ws, message: Message) -> None:
    await ws.send(json.dumps(message))


async def next_message(
    ws, match: Callable[[Message], bool] = lambda m: True, within: float = 5.0
) -> Message:
    """The next message satisfying `match` (others are skipped), within `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no matching message")
        message = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        if match(message):
            return message


async def subscribe(ws, *topics: str, **extra: Any) -> Message:
    await send(ws, {"type": "subscribe", "topics": list(topics), **extra})
    return await next_message(ws, lambda m: m["type"] in ("subscribed", "error"))


def is_event(topic: str) -> Callable[[Message], bool]:
    return lambda m: m["type"] == "event" and m["topic"] == topic


async def create_pipeline(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/api/v1/pipelines", headers=headers, json={"name": "watched"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def patch_pipeline(
    client: httpx.AsyncClient, headers: dict[str, str], pipeline_id: str, n: int
) -> None:
    response = await client.patch(
        f"/api/v1/pipelines/{pipeline_id}", headers=headers, json={"description": f"edit {n}"}
    )
    assert response.status_code == 200, response.text


async def db_execute(server: ServerProcess, sql: str, *params: Any) -> list[tuple]:
    """Run SQL (with `?` placeholders) directly on a server's database, as an operator or a
    crashed process would have left it."""
    if MODE == "scaled":
        numbered = sql
        for i in range(1, len(params) + 1):
            numbered = numbered.replace("?", f"${i}", 1)
        conn = await asyncpg.connect(server.database_url.replace("postgres://", "postgresql://"))
        try:
            return [tuple(r) for r in await conn.fetch(numbered, *params)]
        finally:
            await conn.close()
    with sqlite3.connect(server.data_dir / "aggregator.sqlite3", timeout=10) as conn:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()
        return rows
