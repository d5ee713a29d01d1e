from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_transformations_are_reusable_named_node_configs(client, editor, viewer):
    name = f"active-only-{uuid.uuid4().hex[:6]}"
    created = await client.post(
        "/api/v1/transformations",
        headers=editor.headers,
        json={"name": name, "node_type": "filter", "config": {"expression": "status = 'active'"}},
    )
    assert created.status_code == 201
    row = created.json()
    url = f"/api/v1/transformations/{row['id']}"
    seen = (await client.get(url, headers=viewer.headers)).json()
    assert seen["config"] == {"expression": "status = 'active'"}

    updated = await client.patch(
        url, headers=editor.headers, json={"description": "only active rows"}
    )
    assert updated.json()["description"] == "only active rows"
    listed = await client.get(
        "/api/v1/transformations", headers=viewer.headers, params={"q": name, "node_type": "filter"}
    )
    assert [t["id"] for t in listed.json()["items"]] == [row["id"]]

    assert (await client.delete(url, headers=viewer.headers)).status_code == 403
    assert (await client.delete(url, headers=editor.headers)).status_code == 204
    assert (await client.get(url, headers=editor.headers)).status_code == 404


async def test_invalid_transformations_are_refused(client, editor):
    bad_type = await client.post(
        "/api/v1/transformations",
        headers=editor.headers,
        json={"name": "x", "node_type": "DROP TABLE", "config": {}},
    )
    assert bad_type.status_code == 422
    assert bad_type.json()["errors"][0]["pointer"] == "/node_type"
