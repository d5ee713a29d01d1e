"""A stored notification is also pushed live to the user's open WebSocket."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.jobs.conftest import create_user

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _next(ws, wanted, within: float = 30.0) -> dict:
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await ws.recv())
            if wanted(message):
                return message


async def test_a_new_notification_arrives_on_the_socket(stack):
    user = await create_user(stack.client, stack.admin, "admin")
    url = stack.server.base_url.replace("http://", "ws://") + "/api/v1/ws"
    async with websockets.connect(f"{url}?token={user.access_token}") as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["notifications"]}))
        subscribed = await _next(ws, lambda m: m["type"] == "subscribed")
        assert subscribed["topics"] == [f"notifications:{user.id}"]

        started = await stack.client.post(
            "/api/v1/jobs", headers=user.headers, json={"kind": "maintenance.purge_events"}
        )
        assert started.status_code == 202, started.text
        pushed = await _next(ws, lambda m: m.get("event") == "notification.created")

    assert pushed["topic"] == f"notifications:{user.id}" and pushed["seq"] >= 1
    assert pushed["data"]["title"] == "Job maintenance.purge_events finished"
    assert pushed["data"]["kind"] == "job.succeeded"
    assert pushed["data"]["data"]["entity_id"] == started.json()["id"]
    listed = await stack.client.get("/api/v1/notifications", headers=user.headers)
    assert [n["id"] for n in listed.json()["items"]] == [pushed["data"]["notification_id"]]
