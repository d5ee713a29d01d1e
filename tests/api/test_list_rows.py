"""List pages read rows without the ORM's model conversion (storage/rows.py); what a list shows
for an object must still be exactly what the object's own endpoint shows."""

from __future__ import annotations

import uuid

import pytest

from tests.api.test_connectors import create as create_connector
from tests.api.test_pipelines import create as create_pipeline

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def listed(client, account, path: str, item_id: str, **params) -> dict:
    response = await client.get(path, headers=account.headers, params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    (item,) = [row for row in response.json()["items"] if row["id"] == item_id]
    return item


async def detail(client, account, path: str) -> dict:
    response = await client.get(path, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_listed_pipeline_shows_what_the_pipeline_shows(client, editor):
    pipeline = await create_pipeline(client, editor, schedule="*/5 * * * *")
    row = await listed(client, editor, "/api/v1/pipelines", pipeline["id"], q=pipeline["name"])
    full = await detail(client, editor, f"/api/v1/pipelines/{pipeline['id']}")
    assert row == {name: full[name] for name in row}
    assert {"id", "owner_id", "created_at", "updated_at", "schedule", "version"} <= row.keys()
    assert row["created_at"].endswith("Z") and "T" in row["created_at"]


async def test_a_listed_connector_shows_its_masked_config_like_the_connector(client, editor):
    connector = await create_connector(client, editor)
    row = await listed(client, editor, "/api/v1/connectors", connector["id"], q=connector["name"])
    full = await detail(client, editor, f"/api/v1/connectors/{connector['id']}")
    assert row == {name: full[name] for name in row}
    assert row["config"]["password"] == "********"


async def test_a_listed_transformation_shows_its_config_like_the_transformation(client, editor):
    created = await client.post(
        "/api/v1/transformations",
        headers=editor.headers,
        json={
            "name": f"positive-{uuid.uuid4().hex[:6]}",
            "node_type": "filter",
            "config": {"expression": "amount > 0", "nested": {"keep": [1, 2.5, None, True]}},
        },
    )
    assert created.status_code == 201, created.text
    item = created.json()
    row = await listed(client, editor, "/api/v1/transformations", item["id"], q=item["name"])
    full = await detail(client, editor, f"/api/v1/transformations/{item['id']}")
    assert row == {name: full[name] for name in row}
    assert row["config"]["nested"] == {"keep": [1, 2.5, None, True]}


async def test_a_listed_user_shows_booleans_and_role_like_the_user(client, admin, make_user):
    user = await make_user("viewer")
    row = await listed(client, admin, "/api/v1/users", user.id, q=user.email)
    full = await detail(client, admin, f"/api/v1/users/{user.id}")
    assert row == {name: full[name] for name in row}
    assert row["is_active"] is True and row["role"] == "viewer"
