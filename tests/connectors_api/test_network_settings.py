"""Admin network settings: denied and allowed networks apply to connection tests at once."""

from __future__ import annotations

import pytest

from tests.connectors_api.helpers import connection_test, http_api_config

pytestmark = pytest.mark.asyncio(loop_scope="session")

URL = "/api/v1/settings/network"
CLEAR = {"allowed_networks": [], "denied_networks": [], "allow_loopback": None}


async def put(client, admin, body: dict):
    response = await client.put(URL, headers=admin.headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_admin_denied_and_allowed_networks_apply(client, admin, editor, api_url):
    config = http_api_config(api_url)
    assert (await connection_test(client, editor, "http_api", config))["ok"] is True
    try:
        saved = await put(
            client,
            admin,
            {"allowed_networks": [], "denied_networks": ["127.0.0.1/8"], "allow_loopback": None},
        )
        assert saved["denied_networks"] == ["127.0.0.0/8"]  # normalised
        assert "127.0.0.0/8" in saved["effective"]["denied_networks"]
        denied = await connection_test(client, editor, "http_api", config)
        assert denied["error"]["category"] == "permission", denied

        await put(client, admin, {**CLEAR, "allow_loopback": False})
        refused = await connection_test(client, editor, "http_api", config)
        assert refused["error"]["category"] == "permission"

        # Loopback refused, but an allowed network lets its part of it through.
        await put(
            client,
            admin,
            {"allowed_networks": ["127.0.0.1/32"], "denied_networks": [], "allow_loopback": False},
        )
        assert (await connection_test(client, editor, "http_api", config))["ok"] is True
        fetched = await client.get(URL, headers=admin.headers)
        assert fetched.json()["allowed_networks"] == ["127.0.0.1/32"]
        assert fetched.json()["updated_by"] == admin.id
    finally:
        await put(client, admin, CLEAR)
    assert (await connection_test(client, editor, "http_api", config))["ok"] is True


async def test_metadata_addresses_stay_refused_even_when_allowed(client, admin, editor):
    try:
        await put(client, admin, {**CLEAR, "allowed_networks": ["169.254.0.0/16"]})
        result = await connection_test(
            client, editor, "http_api", http_api_config("http://169.254.169.254")
        )
        assert result["error"]["category"] == "permission"
    finally:
        await put(client, admin, CLEAR)


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, "/allowed_networks"),
        ({**CLEAR, "denied_networks": ["not-a-network"]}, "/denied_networks"),
        ({**CLEAR, "allowed_networks": ["10.0.0.0/99"]}, "/allowed_networks"),
        ({**CLEAR, "allow_loopback": "sometimes"}, "/allow_loopback"),
        ({**CLEAR, "extra": 1}, "/extra"),
    ],
)
async def test_bad_network_settings_are_422(client, admin, body, pointer):
    response = await client.put(URL, headers=admin.headers, json=body)
    assert response.status_code == 422
    assert pointer in {e["pointer"] for e in response.json()["errors"]}


async def test_only_admins_see_or_change_network_settings(client, editor, viewer):
    for account in (editor, viewer):
        assert (await client.get(URL, headers=account.headers)).status_code == 403
        assert (await client.put(URL, headers=account.headers, json=CLEAR)).status_code == 403
