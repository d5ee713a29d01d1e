"""Schema evolution through the API: a snapshot only when discovery sees a change, history
with diffs, schema.changed events; inference from samples and files; comparison."""

from __future__ import annotations

import sqlite3

import pytest

from tests.connectors_api.helpers import create_connector, make_csv, make_sqlite

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _schema(client, account, connector_id: str, refresh: bool = False) -> dict:
    response = await client.get(
        f"/api/v1/connectors/{connector_id}/schema",
        headers=account.headers,
        params={"refresh": str(refresh).lower()},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _history(client, account, connector_id: str, **params) -> dict:
    response = await client.get(
        f"/api/v1/connectors/{connector_id}/schema/history", headers=account.headers, params=params
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _events(client, account, connector_id: str, type_: str) -> list[dict]:
    response = await client.get(
        "/api/v1/events",
        headers=account.headers,
        params={"entity_type": "connector", "entity_id": connector_id, "type": type_},
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_snapshots_only_on_change_with_history_and_events(client, server, editor, viewer):
    path = make_sqlite(server.data_dir)
    connector = await create_connector(client, editor, "sqlite", {"path": path})
    cid = connector["id"]

    first = await _schema(client, viewer, cid)
    unchanged = await _schema(client, editor, cid, refresh=True)
    assert unchanged["cached"] is False
    assert unchanged["snapshot_id"] == first["snapshot_id"]
    assert (await _history(client, viewer, cid))["total"] == 1
    assert len(await _events(client, viewer, cid, "schema.discovered")) == 1
    assert await _events(client, viewer, cid, "schema.changed") == []

    with sqlite3.connect(server.data_dir / path) as db:
        db.executescript(
            "ALTER TABLE events ADD COLUMN source TEXT;"
            "ALTER TABLE events DROP COLUMN at;"
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
        )
    cached = await _schema(client, viewer, cid)
    assert cached["cached"] is True and cached["snapshot_id"] == first["snapshot_id"]
    events_fields = {
        f["name"] for s in cached["streams"] if s["name"] == "events" for f in s["fields"]
    }
    assert "source" not in events_fields  # the cache answers until someone refreshes

    changed = await _schema(client, editor, cid, refresh=True)
    assert changed["snapshot_id"] != first["snapshot_id"]
    assert {s["name"] for s in changed["streams"]} == {"events", "users"}

    history = await _history(client, viewer, cid)
    assert history["total"] == 2
    newest, oldest = history["items"]
    assert oldest["diff"] == [] and newest["id"] == changed["snapshot_id"]
    diff = {(c["stream"], c["field"], c["change"]): c["breaking"] for c in newest["diff"]}
    assert diff == {
        ("events", "at", "removed"): True,
        ("events", "source", "added"): False,
        ("users", None, "added"): False,
    }
    assert newest["breaking"] is True
    assert "streams" not in newest
    with_streams = await _history(client, viewer, cid, include_streams="true", limit=1)
    assert len(with_streams["items"]) == 1 and with_streams["items"][0]["streams"]

    [event] = await _events(client, viewer, cid, "schema.changed")
    assert event["data"]["breaking"] is True
    assert event["data"]["connector_id"] == cid
    assert {c["field"] for c in event["data"]["changes"]} == {"at", "source", None}


async def test_schema_of_an_unreachable_source_is_422_not_500(client, editor, viewer):
    connector = await create_connector(client, editor, "sqlite", {"path": "missing/none.db"})
    response = await client.get(
        f"/api/v1/connectors/{connector['id']}/schema", headers=viewer.headers
    )
    assert response.status_code in (404, 422)
    history = await _history(client, viewer, connector["id"])
    assert history["total"] == 0


async def test_schema_bad_input(client, viewer):
    unknown = await client.get(
        "/api/v1/connectors/00000000-0000-0000-0000-000000000000/schema", headers=viewer.headers
    )
    assert unknown.status_code == 404
    bad_flag = await client.get(
        "/api/v1/connectors/00000000-0000-0000-0000-000000000000/schema?refresh=perhaps",
        headers=viewer.headers,
    )
    assert bad_flag.status_code == 422
    bad_page = await client.get(
        "/api/v1/connectors/00000000-0000-0000-0000-000000000000/schema/history?limit=0",
        headers=viewer.headers,
    )
    assert bad_page.status_code == 422


# --- inference --------------------------------------------------------------------------------


async def test_infer_from_sample_handles_nesting_and_nulls(client, editor):
    sample = [
        {"id": 1, "user": {"name": "ann", "geo": {"lat": 1.5}}, "tags": ["a"], "at": "2026-01-01"},
        {"id": 2, "user": {"name": None, "geo": {"lat": 2}}, "tags": [], "at": "2026-01-02"},
    ]
    response = await client.post(
        "/api/v1/schema/infer", headers=editor.headers, json={"sample": sample, "name": "people"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "people"
    fields = {f["name"]: (f["type"], f["nullable"]) for f in body["fields"]}
    assert fields == {
        "id": ("integer", False),
        "user.name": ("string", True),
        "user.geo.lat": ("number", False),
        "tags": ("json", False),
        "at": ("date", False),
    }


async def test_infer_from_a_file_under_data_dir(client, server, editor):
    path = make_csv(server.data_dir)
    response = await client.post(
        "/api/v1/schema/infer", headers=editor.headers, json={"path": path}
    )
    assert response.status_code == 200, response.text
    assert [f["name"] for f in response.json()["fields"]] == ["order_id", "amount", "ordered_at"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, ""),
        ({"sample": [], "path": "x.csv"}, "/sample"),
        ({"sample": [{"a": 1}], "path": "x.csv"}, ""),
        ({"sample": [1, 2]}, "/sample/0"),
        ({"sample": [{"a": 1}] * 5001}, "/sample"),
        ({"path": "../../etc/passwd"}, "/path"),
        ({"path": "nothing/here.csv"}, "/path"),
        ({"file_id": "abc"}, "/file_id"),
    ],
)
async def test_infer_bad_input_is_4xx(client, server, editor, body, pointer):
    response = await client.post("/api/v1/schema/infer", headers=editor.headers, json=body)
    assert response.status_code in (413, 422), response.text
    if response.status_code == 422:
        assert pointer in {e["pointer"] for e in response.json().get("errors", [])}, response.json()


async def test_infer_needs_an_editor(client, viewer):
    response = await client.post(
        "/api/v1/schema/infer", headers=viewer.headers, json={"sample": [{"a": 1}]}
    )
    assert response.status_code == 403


# --- comparison -------------------------------------------------------------------------------


async def test_compare_marks_breaking_changes(client, viewer):
    left = [
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "price", "type": "integer"},
        {"name": "note", "type": "string"},
        {"name": "email", "type": "string", "nullable": True},
    ]
    right = {
        "name": "v2",
        "fields": [
            {"name": "id", "type": "string", "nullable": False},
            {"name": "price", "type": "number"},
            {"name": "email", "type": "string", "nullable": False},
            {"name": "created_at", "type": "datetime"},
        ],
    }
    response = await client.post(
        "/api/v1/schema/compare", headers=viewer.headers, json={"left": left, "right": right}
    )
    assert response.status_code == 200, response.text
    changes = {(c["field"], c["change"]): c["breaking"] for c in response.json()["changes"]}
    assert changes == {
        ("id", "type_changed"): False,  # integer → string loses nothing
        ("price", "type_changed"): False,  # widening
        ("note", "removed"): True,
        ("email", "nullability_changed"): True,
        ("created_at", "added"): False,
    }
    assert response.json()["breaking"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"left": []},
        {"left": [{"name": "a", "type": "colour"}], "right": []},
        {"left": [{"name": "a", "type": "string", "extra": 1}], "right": []},
        {"left": "x", "right": []},
    ],
)
async def test_compare_bad_input_is_422(client, viewer, body):
    response = await client.post("/api/v1/schema/compare", headers=viewer.headers, json=body)
    assert response.status_code == 422
