"""Saved connectors: config validated by the type's JSON Schema, secrets sealed at rest and
masked on every read."""

from __future__ import annotations

import sqlite3
import uuid

import asyncpg
import pytest

from tests.servers import MODE

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "s3cr3t-Passw0rd!"


def postgres_config(**overrides) -> dict:
    return {
        "host": "db.internal",
        "port": 5432,
        "database": "sales",
        "user": "reader",
        "password": SECRET,
        **overrides,
    }


async def _stored_config_text(server, connector_id: str) -> str:
    if MODE == "scaled":
        conn = await asyncpg.connect(server.database_url)
        try:
            return await conn.fetchval(
                "SELECT config::text FROM connectors WHERE id = $1", uuid.UUID(connector_id)
            )
        finally:
            await conn.close()
    with sqlite3.connect(server.data_dir / "aggregator.sqlite3") as db:
        return db.execute("SELECT config FROM connectors WHERE id = ?", (connector_id,)).fetchone()[
            0
        ]


async def create(client, account, **body) -> dict:
    payload = {
        "name": f"pg-{uuid.uuid4().hex[:6]}",
        "type": "postgres",
        "config": postgres_config(),
    }
    response = await client.post(
        "/api/v1/connectors", headers=account.headers, json={**payload, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_secrets_are_masked_on_read_and_encrypted_at_rest(client, server, editor, viewer):
    connector = await create(client, editor)
    assert connector["config"]["password"] == "********"
    assert connector["config"]["host"] == "db.internal"
    fetched = await client.get(f"/api/v1/connectors/{connector['id']}", headers=viewer.headers)
    listed = await client.get(
        "/api/v1/connectors", headers=viewer.headers, params={"q": connector["name"]}
    )
    assert SECRET not in fetched.text and SECRET not in listed.text
    stored = await _stored_config_text(server, connector["id"])
    assert SECRET not in stored
    assert "db.internal" in stored


async def test_sending_the_mask_back_keeps_the_secret(client, server, editor):
    connector = await create(client, editor)
    url = f"/api/v1/connectors/{connector['id']}"
    before = await _stored_config_text(server, connector["id"])
    edited = await client.patch(
        url,
        headers=editor.headers,
        json={"config": {**connector["config"], "host": "db2.internal"}},
    )
    assert edited.status_code == 200
    assert edited.json()["config"]["host"] == "db2.internal"
    after = await _stored_config_text(server, connector["id"])
    token = lambda text: text.split('"$secret":')[1].split('"')[1]  # noqa: E731
    assert token(after) == token(before)


async def test_a_new_secret_replaces_the_old_one(client, server, editor):
    connector = await create(client, editor)
    before = await _stored_config_text(server, connector["id"])
    await client.patch(
        f"/api/v1/connectors/{connector['id']}",
        headers=editor.headers,
        json={"config": postgres_config(password="another-one")},
    )
    assert await _stored_config_text(server, connector["id"]) != before


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"type": "oracle"}, "/type"),
        ({"config": {"port": 5432}}, "/config/host"),
        ({"config": postgres_config(port="five")}, "/config/port"),
        ({"owner_id": str(uuid.uuid4())}, "/owner_id"),
    ],
)
async def test_invalid_connector_config_is_422_with_pointers(client, editor, body, pointer):
    payload = {"name": "bad", "type": "postgres", "config": postgres_config(), **body}
    response = await client.post("/api/v1/connectors", headers=editor.headers, json=payload)
    assert response.status_code == 422
    assert pointer in {e["pointer"] for e in response.json()["errors"]}


async def test_connector_types_catalog_has_renderable_schemas(client, viewer):
    types = (await client.get("/api/v1/connectors/types", headers=viewer.headers)).json()
    by_type = {t["type"]: t for t in types}
    assert {"postgres", "mysql", "sqlite", "http_api", "file", "dataset"} <= set(by_type)
    password = by_type["postgres"]["config_schema"]["properties"]["password"]
    assert password["writeOnly"] is True
    unknown = await client.get("/api/v1/connectors/types/oracle", headers=viewer.headers)
    assert unknown.status_code == 404


async def test_viewers_read_but_cannot_change_connectors(client, editor, viewer):
    connector = await create(client, editor)
    url = f"/api/v1/connectors/{connector['id']}"
    assert (await client.patch(url, headers=viewer.headers, json={"name": "x"})).status_code == 403
    assert (await client.delete(url, headers=viewer.headers)).status_code == 403
    assert (await client.delete(url, headers=editor.headers)).status_code == 204
    assert (await client.get(url, headers=viewer.headers)).status_code == 404
