"""The WebSocket hub as a client sees it: auth, topics, live delivery, resume, limits."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
import jwt
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import PASSWORD, forge_token, login
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

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def closed_code(ws, within: float = 5.0) -> int | None:
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def test_second_client_sees_pipeline_event_within_100_ms(server, client, editor, viewer):
    pipeline_id = await create_pipeline(client, editor.headers)
    topic = f"pipeline:{pipeline_id}"
    async with open_socket(server, viewer.access_token) as ws:
        assert (await subscribe(ws, topic)) == {"type": "subscribed", "topics": [topic]}
        await patch_pipeline(client, editor.headers, pipeline_id, 1)
        answered = time.monotonic()
        event = await next_message(ws, is_event(topic))
        assert time.monotonic() - answered < 0.1
    assert event["event"] == "pipeline.updated"
    assert event["seq"] == 2  # pipeline.created was 1
    assert event["data"]["changed"] == ["description"]
    assert event["user_id"] == editor.id
    assert event["ts"]


async def test_pipeline_lifecycle_events_reach_watchers(server, client, editor, viewer):
    pipeline_id = await create_pipeline(client, editor.headers)
    topic = f"pipeline:{pipeline_id}"
    async with open_socket(server, viewer.access_token) as ws:
        await subscribe(ws, topic)
        restored = await client.post(
            f"/api/v1/pipelines/{pipeline_id}/versions/1/restore", headers=editor.headers
        )
        assert restored.status_code == 200, restored.text
        event = await next_message(ws, is_event(topic))
        assert event["event"] == "pipeline.version_restored"
        assert event["data"]["restored_from"] == 1
        deleted = await client.delete(f"/api/v1/pipelines/{pipeline_id}", headers=editor.headers)
        assert deleted.status_code == 204
        assert (await next_message(ws, is_event(topic)))["event"] == "pipeline.deleted"


async def test_topics_the_user_may_not_see_are_refused(server, viewer, admin):
    async with open_socket(server, viewer.access_token) as ws:
        for topic in (
            f"notifications:{admin.id}",  # someone else's
            f"pipeline:{uuid.uuid4()}",  # no such pipeline
            "pipeline:not-a-uuid",
            f"user:{viewer.id}",  # server-internal
            "everything",
        ):
            answer = await subscribe(ws, topic)
            assert answer["type"] == "error", topic
            assert answer["code"] == "forbidden_topic"
            assert answer["topic"] == topic
        own = await subscribe(ws, "notifications")
        assert own == {"type": "subscribed", "topics": [f"notifications:{viewer.id}"]}


async def test_missing_or_invalid_token_is_closed_4401(server, client, make_user):
    async with open_socket(server, "not-a-jwt") as ws:
        assert await closed_code(ws) == 4401
    async with websockets.connect(ws_url(server)) as ws:
        assert await closed_code(ws) == 4401
    async with websockets.connect(ws_url(server, "?token=bad")) as ws:
        assert await closed_code(ws) == 4401
    user = await make_user("viewer")
    async with websockets.connect(ws_url(server, f"?token={user.access_token}")) as ws:
        await send(ws, {"type": "ping"})
        assert await next_message(ws) == {"type": "pong"}
    log = server.log_path.read_text()
    assert user.access_token not in log
    assert "token=[redacted]" in log


async def test_foreign_origin_is_refused(server, viewer):
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(server, viewer.access_token, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with open_socket(server, viewer.access_token, origin="http://localhost:5173") as ws:
        await send(ws, {"type": "ping"})
        assert (await next_message(ws))["type"] == "pong"


async def test_logout_and_deletion_close_the_users_sockets(server, client, admin, make_user):
    user = await make_user("viewer")
    other_session = await login(client, user.email, PASSWORD)
    async with (
        open_socket(server, user.access_token) as ws,
        open_socket(server, other_session.access_token) as other,
    ):
        await send(ws, {"type": "ping"})
        await next_message(ws)
        response = await client.post("/api/v1/auth/logout", headers=user.headers)
        assert response.status_code == 204
        assert await closed_code(ws) == 4401
        # Logging out ends that session only; the user's other session stays connected.
        await send(other, {"type": "ping"})
        assert (await next_message(other))["type"] == "pong"
        deleted = await client.delete(f"/api/v1/users/{user.id}", headers=admin.headers)
        assert deleted.status_code == 204
        assert await closed_code(other) == 4401


async def test_reconnect_with_since_loses_and_duplicates_nothing(server, client, editor, viewer):
    pipeline_id = await create_pipeline(client, editor.headers)
    topic = f"pipeline:{pipeline_id}"
    async with open_socket(server, viewer.access_token) as ws:
        await subscribe(ws, topic)
        await patch_pipeline(client, editor.headers, pipeline_id, 1)
        last_seen = (await next_message(ws, is_event(topic)))["seq"]
    # Offline: three edits happen.
    for n in range(2, 5):
        await patch_pipeline(client, editor.headers, pipeline_id, n)

    async def keep_editing() -> None:
        for n in range(5, 15):
            await patch_pipeline(client, editor.headers, pipeline_id, n)

    async with open_socket(server, viewer.access_token) as ws:
        # Edits keep coming while the missed ones are replayed.
        editing = asyncio.create_task(keep_editing())
        assert (await subscribe(ws, topic, since=last_seen))["type"] == "subscribed"
        await editing
        seqs = []
        while len(seqs) < 13:
            seqs.append((await next_message(ws, is_event(topic)))["seq"])
        with pytest.raises(TimeoutError):
            await next_message(ws, is_event(topic), within=0.5)
    assert seqs == list(range(last_seen + 1, last_seen + 14))


async def test_resume_beyond_retained_history_asks_for_resync(server, client, editor, viewer):
    pipeline_id = await create_pipeline(client, editor.headers)
    topic = f"pipeline:{pipeline_id}"
    for n in range(3):
        await patch_pipeline(client, editor.headers, pipeline_id, n)
    # Retention removed the oldest events.
    await db_execute(server, "DELETE FROM events WHERE topic = ? AND seq <= 2", topic)
    async with open_socket(server, viewer.access_token) as ws:
        answer = await subscribe(ws, topic, since=0)
        assert answer["type"] == "subscribed"
        error = await next_message(ws, lambda m: m["type"] == "error")
        assert (error["code"], error["topic"]) == ("resync_required", topic)
        # Still subscribed: what happens next arrives.
        await patch_pipeline(client, editor.headers, pipeline_id, 9)
        assert (await next_message(ws, is_event(topic)))["seq"] == 5
        # A client ahead of the server's history (e.g. a restored database) must resync too.
        await subscribe(ws, topic, since=1000)
        error = await next_message(ws, lambda m: m["type"] == "error")
        assert error["code"] == "resync_required"


async def test_client_messages_are_validated_and_rate_limited(server, viewer):
    async with open_socket(server, viewer.access_token) as ws:
        await ws.send("not json")
        assert (await next_message(ws))["code"] == "invalid_message"
        await send(ws, {"type": "subscribe", "topics": ["metrics:system"], "interval_ms": 10})
        assert (await next_message(ws))["code"] == "invalid_message"
        for _ in range(100):
            await send(ws, {"type": "ping"})
        answer = await next_message(ws, lambda m: m["type"] == "error")
        assert answer["code"] == "rate_limited"
    async with open_socket(server, viewer.access_token) as ws:
        await ws.send("x" * (200 * 1024))
        assert await closed_code(ws) == 1009


async def test_live_system_metrics_at_the_chosen_interval(server, client, viewer):
    async with open_socket(server, viewer.access_token) as ws:
        answer = await subscribe(ws, "metrics:system", "metrics:pipelines", interval_ms=250)
        assert answer["topics"] == ["metrics:system", "metrics:pipelines"]
        first = await next_message(ws, is_event("metrics:system"))
        second = await next_message(ws, is_event("metrics:system"))
        pipelines = await next_message(ws, is_event("metrics:pipelines"))
    assert {"cpu", "memory", "disk", "network", "connections", "queues"} <= first["data"].keys()
    assert first["data"]["connections"]["websocket_this_process"] >= 1
    assert first["data"]["ts"] < second["data"]["ts"]
    assert {"running_executions", "rows_per_second", "failures_last_hour"} <= pipelines[
        "data"
    ].keys()
    response = await client.get("/api/v1/monitoring/system", headers=viewer.headers)
    assert response.status_code == 200
    assert {"cpu", "memory", "disk", "connections", "queues"} <= response.json().keys()
    assert (await client.get("/api/v1/monitoring/system")).status_code == 401


async def test_connections_are_recorded_and_removed(server, viewer):
    async def rows() -> int:
        found = await db_execute(
            server, "SELECT COUNT(*) FROM websocket_connections WHERE user_id = ?", viewer.id
        )
        return found[0][0]

    async with open_socket(server, viewer.access_token) as ws:
        await subscribe(ws, "notifications")
        for _ in range(50):
            if await rows() == 1:
                break
            await asyncio.sleep(0.1)
        assert await rows() == 1
    for _ in range(50):
        if await rows() == 0:
            break
        await asyncio.sleep(0.1)
    assert await rows() == 0


async def test_outbox_relay_publishes_events_stored_but_never_published(server_factory):
    server = await server_factory(
        OUTBOX_RELAY_INTERVAL_SECONDS="0.3", OUTBOX_RELAY_GRACE_SECONDS="0"
    )
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await client.post(
            "/api/v1/auth/register",
            json={"email": "relay@example.com", "password": PASSWORD, "full_name": "R"},
        )
        admin = await login(client, "relay@example.com")
        pipeline_id = await create_pipeline(client, admin.headers)
    topic = f"pipeline:{pipeline_id}"
    event_id = str(uuid.uuid4())
    async with open_socket(server, admin.access_token) as ws:
        await subscribe(ws, topic)
        # What a process that crashed between its commit and its publish leaves behind.
        await db_execute(
            server,
            "UPDATE topic_sequences SET last_seq = last_seq + 1 WHERE topic = ?",
            topic,
        )
        await db_execute(
            server,
            "INSERT INTO events (id, topic, seq, type, entity_type, entity_id, data, "
            "created_at) VALUES (?, ?, 2, 'pipeline.updated', 'pipeline', ?, ?, ?)",
            event_id,
            topic,
            pipeline_id,
            '{"name": "watched", "version": 2}',
            datetime(2020, 1, 1, tzinfo=UTC),
        )
        event = await next_message(ws, is_event(topic), within=10)
    assert (event["id"], event["seq"], event["event"]) == (event_id, 2, "pipeline.updated")
    # Marked published (right after the publish) so no relay sends it again.
    for _ in range(50):
        unpublished = await db_execute(
            server, "SELECT id FROM events WHERE topic = ? AND published_at IS NULL", topic
        )
        if not unpublished:
            break
        await asyncio.sleep(0.1)
    assert unpublished == []


async def test_a_gap_in_live_events_is_filled_from_storage(server, client, editor, viewer):
    pipeline_id = await create_pipeline(client, editor.headers)
    topic = f"pipeline:{pipeline_id}"
    async with open_socket(server, viewer.access_token) as ws:
        await subscribe(ws, topic)
        await patch_pipeline(client, editor.headers, pipeline_id, 1)
        assert (await next_message(ws, is_event(topic)))["seq"] == 2
        # Seq 3 is committed by "another process" whose publish has not happened yet...
        await db_execute(
            server, "UPDATE topic_sequences SET last_seq = last_seq + 1 WHERE topic = ?", topic
        )
        await db_execute(
            server,
            "INSERT INTO events (id, topic, seq, type, entity_type, entity_id, data, "
            "created_at) VALUES (?, ?, 3, 'pipeline.updated', 'pipeline', ?, ?, ?)",
            str(uuid.uuid4()),
            topic,
            pipeline_id,
            '{"name": "watched", "version": 3}',
            datetime.now(UTC),
        )
        # ...when seq 4 arrives live: the client still gets 3 first, then 4.
        await patch_pipeline(client, editor.headers, pipeline_id, 2)
        seqs = [(await next_message(ws, is_event(topic), within=2))["seq"] for _ in range(2)]
    assert seqs == [3, 4]


async def test_a_socket_is_closed_when_its_token_expires(server, viewer):
    claims = jwt.decode(viewer.access_token, options={"verify_signature": False})
    expires = int(time.time()) + 2
    async with open_socket(server, forge_token({**claims, "exp": expires})) as ws:
        await send(ws, {"type": "ping"})
        assert (await next_message(ws))["type"] == "pong"
        assert await closed_code(ws, within=expires - time.time() + 3) == 4401
    assert time.time() >= expires
