from __future__ import annotations

import uuid
from itertools import pairwise

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


def canvas(*node_ids: str) -> dict:
    nodes = [
        {
            "id": n,
            "type": "default",
            "position": {"x": i * 100, "y": 0},
            "data": {"label": n, "config": {}},
            "selected": False,
        }
        for i, n in enumerate(node_ids)
    ]
    edges = [
        {"id": f"e-{a}-{b}", "source": a, "target": b, "sourceHandle": None, "targetHandle": None}
        for a, b in pairwise(node_ids)
    ]
    return {"nodes": nodes, "edges": edges, "viewport": {"x": 0, "y": 0, "zoom": 1.5}}


async def create(client, account, **fields) -> dict:
    body = {"name": f"pipe-{uuid.uuid4().hex[:6]}", "visual_definition": canvas("a", "b"), **fields}
    response = await client.post("/api/v1/pipelines", headers=account.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_keeps_the_canvas_exactly_and_starts_at_version_1(client, editor):
    definition = canvas("src", "filter", "dst")
    pipeline = await create(client, editor, visual_definition=definition, schedule="*/5 * * * *")
    assert pipeline["version"] == 1
    assert pipeline["owner_id"] == editor.id
    fetched = (
        await client.get(f"/api/v1/pipelines/{pipeline['id']}", headers=editor.headers)
    ).json()
    assert fetched["visual_definition"] == definition
    assert fetched["schedule"] == "*/5 * * * *"


async def test_every_save_bumps_the_version_and_keeps_history(client, editor):
    pipeline = await create(client, editor, name="v1")
    url = f"/api/v1/pipelines/{pipeline['id']}"
    await client.patch(url, headers=editor.headers, json={"name": "v2"})
    third = await client.patch(
        url, headers=editor.headers, json={"visual_definition": canvas("x", "y", "z")}
    )
    assert third.json()["version"] == 3

    versions = (await client.get(f"{url}/versions", headers=editor.headers)).json()
    assert versions["total"] == 3
    assert [v["version"] for v in versions["items"]] == [3, 2, 1]
    first = (await client.get(f"{url}/versions/1", headers=editor.headers)).json()
    assert first["name"] == "v1"
    assert first["visual_definition"] == pipeline["visual_definition"]


async def test_restoring_a_version_saves_it_as_a_new_version(client, editor):
    pipeline = await create(client, editor, name="original")
    url = f"/api/v1/pipelines/{pipeline['id']}"
    await client.patch(url, headers=editor.headers, json={"name": "changed"})
    restored = await client.post(f"{url}/versions/1/restore", headers=editor.headers)
    assert restored.json()["name"] == "original"
    assert restored.json()["version"] == 3


async def test_stale_if_match_is_refused_and_changes_nothing(client, editor):
    pipeline = await create(client, editor)
    url = f"/api/v1/pipelines/{pipeline['id']}"
    await client.patch(url, headers=editor.headers, json={"name": "someone else"})
    stale = await client.patch(
        url, headers={**editor.headers, "If-Match": '"1"'}, json={"name": "mine"}
    )
    assert stale.status_code == 409
    current = (await client.get(url, headers=editor.headers)).json()
    assert current["name"] == "someone else"
    assert current["version"] == 2


async def test_list_pages_sorts_filters_and_searches(client, editor):
    tag = uuid.uuid4().hex[:8]
    for i in range(3):
        await create(client, editor, name=f"{tag}-{i}", status="paused" if i == 2 else "active")
    listed = (
        await client.get(
            "/api/v1/pipelines",
            headers=editor.headers,
            params={"q": tag, "sort": "-name", "limit": 2},
        )
    ).json()
    assert listed["total"] == 3
    assert [p["name"] for p in listed["items"]] == [f"{tag}-2", f"{tag}-1"]
    assert "visual_definition" not in listed["items"][0]
    paused = (
        await client.get(
            "/api/v1/pipelines", headers=editor.headers, params={"q": tag, "status": "paused"}
        )
    ).json()
    assert [p["name"] for p in paused["items"]] == [f"{tag}-2"]


async def test_delete_removes_the_pipeline_and_its_versions(client, editor):
    pipeline = await create(client, editor)
    url = f"/api/v1/pipelines/{pipeline['id']}"
    assert (await client.delete(url, headers=editor.headers)).status_code == 204
    assert (await client.get(url, headers=editor.headers)).status_code == 404
    assert (await client.get(f"{url}/versions", headers=editor.headers)).status_code == 404
    assert (await client.delete(url, headers=editor.headers)).status_code == 404


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": ""}, "/name"),
        ({"name": "x", "schedule": "every minute"}, "/schedule"),
        ({"name": "x", "status": "running"}, "/status"),
        ({"name": "x", "version": 7}, "/version"),
        ({"name": "x", "owner_id": str(uuid.uuid4())}, "/owner_id"),
        (
            {"name": "x", "visual_definition": {"nodes": [{"data": {}}]}},
            "/visual_definition/nodes/0/id",
        ),
        ({"name": "x", "visual_definition": {"nodes": "many"}}, "/visual_definition/nodes"),
    ],
)
async def test_invalid_pipelines_are_422_with_a_pointer(client, editor, body, pointer):
    before = (await client.get("/api/v1/pipelines", headers=editor.headers)).json()["total"]
    response = await client.post("/api/v1/pipelines", headers=editor.headers, json=body)
    assert response.status_code == 422
    assert pointer in {e["pointer"] for e in response.json()["errors"]}
    after = (await client.get("/api/v1/pipelines", headers=editor.headers)).json()["total"]
    assert after == before


async def test_too_many_nodes_is_refused(client, editor):
    nodes = [{"id": str(i), "data": {}} for i in range(501)]
    response = await client.post(
        "/api/v1/pipelines",
        headers=editor.headers,
        json={"name": "huge", "visual_definition": {"nodes": nodes}},
    )
    assert response.status_code in (413, 422)
