"""Configuration validation and configuration templates (secrets sealed and masked like a
connector's)."""

from __future__ import annotations

import sqlite3
import uuid

import asyncpg
import pytest

from tests.connectors_api.helpers import API_TOKEN, http_api_config
from tests.servers import MODE

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "template-Passw0rd!"


async def _stored_template_config(server, template_id: str) -> str:
    if MODE == "scaled":
        conn = await asyncpg.connect(server.database_url)
        try:
            return await conn.fetchval(
                "SELECT config::text FROM configuration_templates WHERE id = $1",
                uuid.UUID(template_id),
            )
        finally:
            await conn.close()
    with sqlite3.connect(server.data_dir / "aggregator.sqlite3") as db:
        row = db.execute(
            "SELECT config FROM configuration_templates WHERE id = ?", (template_id,)
        ).fetchone()
        return row[0]


async def test_validate_answers_with_pointers(client, viewer):
    url = "/api/v1/configurations/validate"
    good = {"type": "postgres", "config": {"host": "db", "database": "x", "user": "u"}}
    response = await client.post(url, headers=viewer.headers, json=good)
    assert response.status_code == 200
    assert response.json() == {"valid": True, "errors": []}
    bad = {"type": "postgres", "config": {"port": "five", "database": "x"}}
    response = await client.post(url, headers=viewer.headers, json=bad)
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert {e["pointer"] for e in body["errors"]} == {"/config/host", "/config/port"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"type": "oracle", "config": {}}, 422),
        ({"type": "postgres"}, 200),  # an empty config is invalid, reported as such
        ({"config": {}}, 422),
        ({"type": "postgres", "config": [], "x": 1}, 422),
    ],
)
async def test_validate_bad_requests(client, viewer, body, status):
    response = await client.post(
        "/api/v1/configurations/validate", headers=viewer.headers, json=body
    )
    assert response.status_code == status, response.text


async def test_templates_seal_and_mask_secrets(client, server, editor, viewer):
    body = {
        "name": f"warehouse-{uuid.uuid4().hex[:6]}",
        "type": "postgres",
        "config": {"host": "wh.internal", "user": "etl", "password": SECRET},
    }
    created = await client.post(
        "/api/v1/configurations/templates", headers=editor.headers, json=body
    )
    assert created.status_code == 201, created.text
    template = created.json()
    assert template["config"] == {"host": "wh.internal", "user": "etl", "password": "********"}
    url = f"/api/v1/configurations/templates/{template['id']}"
    for response in (
        await client.get(url, headers=viewer.headers),
        await client.get(
            "/api/v1/configurations/templates",
            headers=viewer.headers,
            params={"q": body["name"], "type": "postgres"},
        ),
    ):
        assert response.status_code == 200
        assert SECRET not in response.text and "********" in response.text
    before = await _stored_template_config(server, template["id"])
    assert SECRET not in before and "wh.internal" in before

    kept = await client.patch(
        url, headers=editor.headers, json={"config": {**template["config"], "port": 6543}}
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["config"]["port"] == 6543
    after = await _stored_template_config(server, template["id"])
    token = lambda text: text.split('"$secret":')[1].split('"')[1]  # noqa: E731
    assert token(after) == token(before)

    assert (await client.delete(url, headers=viewer.headers)).status_code == 403
    assert (await client.delete(url, headers=editor.headers)).status_code == 204
    assert (await client.get(url, headers=viewer.headers)).status_code == 404


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": "t", "type": "oracle", "config": {}}, "/type"),
        ({"name": "t", "type": "postgres", "config": {"port": "x"}}, "/config/port"),
        ({"name": "", "type": "postgres", "config": {}}, "/name"),
        ({"name": "t", "type": "postgres", "owner_id": "x"}, "/owner_id"),
    ],
)
async def test_bad_templates_are_422(client, editor, body, pointer):
    response = await client.post(
        "/api/v1/configurations/templates", headers=editor.headers, json=body
    )
    assert response.status_code == 422
    assert pointer in {e["pointer"] for e in response.json()["errors"]}


async def test_template_roles_and_unknown_ids(client, editor, viewer):
    body = {"name": "t", "type": "sqlite", "config": {"path": "a.db"}}
    refused = await client.post(
        "/api/v1/configurations/templates", headers=viewer.headers, json=body
    )
    assert refused.status_code == 403
    unknown = f"/api/v1/configurations/templates/{uuid.uuid4()}"
    assert (await client.get(unknown, headers=viewer.headers)).status_code == 404
    assert (await client.patch(unknown, headers=editor.headers, json={})).status_code == 404
    assert (
        await client.get("/api/v1/configurations/templates/nope", headers=viewer.headers)
    ).status_code == 404


async def test_a_connector_from_a_template_carries_its_secrets(client, editor, viewer, api_url):
    template_config = {
        **http_api_config(api_url, "secure/items"),
        "auth": {"type": "bearer", "token": API_TOKEN},
    }
    created = await client.post(
        "/api/v1/configurations/templates",
        headers=editor.headers,
        json={"name": "secure api", "type": "http_api", "config": template_config},
    )
    assert created.status_code == 201, created.text
    template = created.json()
    assert template["config"]["auth"]["token"] == "********"
    url = f"/api/v1/configurations/templates/{template['id']}/connectors"
    # The client only ever saw the mask; sending it back keeps the template's token.
    response = await client.post(
        url,
        headers=editor.headers,
        json={"name": "from template", "config": {"auth": template["config"]["auth"]}},
    )
    assert response.status_code == 201, response.text
    connector = response.json()
    assert connector["type"] == "http_api" and connector["config"]["auth"]["token"] == "********"
    tested = await client.post(
        f"/api/v1/connectors/{connector['id']}/test", headers=editor.headers, json={}
    )
    assert tested.json()["ok"] is True, tested.json()

    overridden = await client.post(
        url, headers=editor.headers, json={"name": "bad", "config": {"timeout_s": "slow"}}
    )
    assert overridden.status_code == 422
    assert overridden.json()["errors"][0]["pointer"] == "/config/timeout_s"
    assert (await client.post(url, headers=viewer.headers, json={"name": "x"})).status_code == 403
    missing = f"/api/v1/configurations/templates/{uuid.uuid4()}/connectors"
    assert (
        await client.post(missing, headers=editor.headers, json={"name": "x"})
    ).status_code == 404
