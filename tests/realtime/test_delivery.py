"""Delivery under pressure and across processes; the audit trail API."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime

import httpx
import psutil
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import PASSWORD, login
from tests.realtime.conftest import (
    create_pipeline,
    db_execute,
    is_event,
    next_message,
    open_socket,
    patch_pipeline,
    send,
    subscribe,
    ws_url,
)
from tests.servers import MODE

pytestmark = pytest.mark.asyncio(loop_scope="session")
MiB = 1024 * 1024


async def first_admin(server) -> object:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await client.post(
            "/api/v1/auth/register",
            json={"email": "first@example.com", "password": PASSWORD, "full_name": "F"},
        )
        return await login(client, "first@example.com")


async def test_a_consumer_that_cannot_keep_up_is_closed_4008_and_memory_stays_bounded(
    server_factory,
):
    server = await server_factory(WS_SEND_QUEUE="16", BENCH_HOOKS="true")
    admin = await first_admin(server)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        pipeline_id = await create_pipeline(client, admin.headers)
        topic = f"pipeline:{pipeline_id}"
        # A client that stops reading: a tiny receive window, and no recv() calls.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        async with websockets.connect(
            ws_url(server), sock=sock, subprotocols=["bearer", admin.access_token], max_queue=1
        ) as slow:
            assert (await subscribe(slow, topic))["type"] == "subscribed"
            rss_before = psutil.Process(server.process.pid).memory_info().rss
            # ~100 MiB of events for this one socket, far more than its queue may hold.
            response = await client.post(
                "/api/v1/bench/publish",
                headers=admin.headers,
                json={"topic": topic, "count": 6400, "rate": 4000, "payload_bytes": 16384},
            )
            assert response.status_code == 202, response.text
            await asyncio.sleep(2.5)
            rss_after = psutil.Process(server.process.pid).memory_info().rss
            messages = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    messages.append(await asyncio.wait_for(slow.recv(), 10))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        assert '"code":"slow_consumer"' in messages[-1]
        assert len(messages) < 6400
        assert rss_after - rss_before < 32 * MiB
        # The server is fine: a new client gets live events.
        async with open_socket(server, admin.access_token) as ws:
            await subscribe(ws, topic)
            await patch_pipeline(client, admin.headers, pipeline_id, 1)
            # The burst may still be draining through the bus (Redis in scaled mode): skip it.
            updated = await next_message(
                ws, lambda m: is_event(topic)(m) and m["event"] == "pipeline.updated", within=30
            )
            assert updated["data"]


async def test_the_bench_hook_is_off_by_default(client, admin):
    response = await client.post(
        "/api/v1/bench/publish",
        headers=admin.headers,
        json={"topic": "metrics:system", "count": 1, "rate": 1},
    )
    assert response.status_code == 404


@pytest.mark.skipif(MODE != "scaled", reason="cross-process fan-out needs the Redis bus")
async def test_a_client_on_one_process_receives_events_caused_in_another(
    server, server_factory, client, editor, make_user
):
    other = await server_factory(DATABASE_URL=server.database_url)
    user = await make_user("viewer")
    pipeline_id = await create_pipeline(client, editor.headers)
    topic = f"pipeline:{pipeline_id}"
    async with open_socket(other, user.access_token) as ws:
        assert (await subscribe(ws, topic))["type"] == "subscribed"
        await patch_pipeline(client, editor.headers, pipeline_id, 1)  # served by `server`
        event = await next_message(ws, is_event(topic))
        assert (event["event"], event["seq"]) == ("pipeline.updated", 2)
        # Logging out on one process closes the session's sockets on the other.
        response = await client.post("/api/v1/auth/logout", headers=user.headers)
        assert response.status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_events_api_filters_and_pages_with_a_cursor(client, admin, editor, viewer):
    pipeline_id = await create_pipeline(client, editor.headers)
    for n in range(4):
        await patch_pipeline(client, editor.headers, pipeline_id, n)
    trail = f"/api/v1/events?entity_type=pipeline&entity_id={pipeline_id}"

    seen, cursor = [], None
    while True:
        url = f"{trail}&order=asc&limit=2" + (f"&after={cursor}" if cursor else "")
        response = await client.get(url, headers=viewer.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [e["type"] for e in seen] == ["pipeline.created"] + ["pipeline.updated"] * 4
    assert [e["seq"] for e in seen] == [1, 2, 3, 4, 5]
    assert all(e["user_id"] == editor.id for e in seen)

    newest = (await client.get(f"{trail}&limit=1", headers=viewer.headers)).json()
    assert newest["items"][0]["seq"] == 5 and newest["next_cursor"]
    by_type = await client.get(f"{trail}&type=pipeline.created", headers=viewer.headers)
    assert [e["seq"] for e in by_type.json()["items"]] == [1]
    by_prefix = await client.get(f"{trail}&type=pipeline.*", headers=viewer.headers)
    assert len(by_prefix.json()["items"]) == 5
    by_other_user = await client.get(f"{trail}&user_id={admin.id}", headers=viewer.headers)
    assert by_other_user.json()["items"] == []
    future = await client.get(f"{trail}&from=2100-01-01T00:00:00Z", headers=viewer.headers)
    assert future.json() == {"items": [], "next_cursor": None}

    # Account events are the admin's and the user's own business.
    viewer_sees = await client.get("/api/v1/events?entity_type=user", headers=viewer.headers)
    assert {e["entity_id"] for e in viewer_sees.json()["items"]} <= {viewer.id}
    admin_sees = await client.get(
        f"/api/v1/events?entity_type=user&entity_id={editor.id}", headers=admin.headers
    )
    assert [e["type"] for e in admin_sees.json()["items"]] == ["user.created"]


@pytest.mark.parametrize(
    "query",
    ["after=not-a-cursor", "limit=0", "limit=100000", "from=yesterday", "order=sideways", "x=1"],
)
async def test_events_api_refuses_bad_queries(client, viewer, query):
    response = await client.get(f"/api/v1/events?{query}", headers=viewer.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_events_api_needs_a_token(client):
    assert (await client.get("/api/v1/events")).status_code == 401


async def test_unsubscribe_stops_delivery(server, client, editor, viewer):
    pipeline_id = await create_pipeline(client, editor.headers)
    topic = f"pipeline:{pipeline_id}"
    async with open_socket(server, viewer.access_token) as ws:
        await subscribe(ws, topic)
        await send(ws, {"type": "unsubscribe", "topics": [topic]})
        assert await next_message(ws) == {"type": "unsubscribed", "topics": [topic]}
        await patch_pipeline(client, editor.headers, pipeline_id, 1)
        await send(ws, {"type": "ping"})
        assert await next_message(ws) == {"type": "pong"}


async def test_dead_peers_are_dropped_and_stale_rows_cleaned(server_factory):
    server = await server_factory(
        WS_PING_INTERVAL_SECONDS="0.5",
        WS_PING_TIMEOUT_SECONDS="0.5",
        WS_RECORD_FLUSH_SECONDS="0.2",
        WS_LAST_PING_SECONDS="0.5",
    )
    admin = await first_admin(server)
    # A row left by a process that died long ago.
    await db_execute(
        server,
        "INSERT INTO websocket_connections (id, user_id, process_token, topics, remote_addr, "
        "connected_at, last_ping) VALUES (?, ?, 'gone:0:main', '[]', '', ?, ?)",
        str(uuid.uuid4()),
        admin.id,
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2020, 1, 1, tzinfo=UTC),
    )
    # A peer that vanished without closing: it never answers the server's pings.
    sock = socket.socket()
    sock.connect(("127.0.0.1", server.port))
    ws = await websockets.connect(
        ws_url(server), sock=sock, subprotocols=["bearer", admin.access_token], ping_interval=None
    )
    await subscribe(ws, "notifications")
    ws.transport.pause_reading()  # frozen: the pings are never read, hence never answered

    async def rows() -> list[tuple]:
        return await db_execute(server, "SELECT process_token FROM websocket_connections")

    for _ in range(60):
        if not await rows():
            break
        await asyncio.sleep(0.1)
    assert await rows() == []  # the dead peer's row and the stale one are both gone
    ws.transport.abort()
