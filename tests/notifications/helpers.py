"""What the notification tests share: a real failing run, reading a user's notifications."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import Account
from tests.executions.helpers import (
    create_connector,
    create_pipeline,
    sales_canvas,
    start_run,
    wait_for_status,
)
from tests.jobs.helpers import wait_for


async def failed_run(client: httpx.AsyncClient, owner: Account, name: str) -> str:
    """A real execution failure: the pipeline reads a file that does not exist."""
    source = await create_connector(
        client, owner, "file", {"path": f"missing-{uuid.uuid4().hex}.csv"}, name=name
    )
    pipeline = await create_pipeline(
        client, owner, sales_canvas(source, f"ds_{uuid.uuid4().hex[:8]}"), name=name
    )
    execution_id = await start_run(client, owner, pipeline["id"])
    execution = await wait_for_status(client, owner, execution_id)
    assert execution["status"] == "failed", execution
    return execution_id


async def notifications(client: httpx.AsyncClient, who: Account, **params) -> dict:
    response = await client.get("/api/v1/notifications", headers=who.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def notification_about(client: httpx.AsyncClient, who: Account, entity_id: str) -> dict:
    async def probe():
        items = (await notifications(client, who))["items"]
        return [n for n in items if n["data"].get("entity_id") == entity_id]

    return (await wait_for(probe, bool))[0]
