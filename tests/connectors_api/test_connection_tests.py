"""Every connector type through the API against its real server or file: create → test →
schema → preview, and connection tests that fail with a category a user can act on."""

from __future__ import annotations

import time

import pytest

from tests.connectors_api.helpers import (
    API_TOKEN,
    closed_port,
    connection_test,
    create_connector,
    http_api_config,
    make_csv,
    make_dataset,
    make_sqlite,
    silent_port,
)
from tests.servers import MODE

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def round_trip(client, editor, viewer, type_: str, config: dict, stream: str) -> dict:
    """Create, test, read the schema (twice: discovered, then cached) and preview a stream."""
    connector = await create_connector(client, editor, type_, config)
    base = f"/api/v1/connectors/{connector['id']}"
    tested = await client.post(f"{base}/test", headers=editor.headers, json={})
    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is True, tested.json()
    assert tested.json()["latency_ms"] >= 0

    schema = await client.get(f"{base}/schema", headers=viewer.headers)
    assert schema.status_code == 200, schema.text
    assert schema.json()["cached"] is False
    streams = {s["name"]: s for s in schema.json()["streams"]}
    assert stream in streams, list(streams)
    again = await client.get(f"{base}/schema", headers=viewer.headers)
    assert again.json()["cached"] is True
    assert again.json()["snapshot_id"] == schema.json()["snapshot_id"]

    preview = await client.post(
        f"{base}/preview", headers=editor.headers, json={"stream": stream, "limit": 2}
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert len(body["rows"]) == 2
    assert {c["name"] for c in body["columns"]} == set(body["rows"][0])
    return {"connector": connector, "stream": streams[stream], "preview": body}


async def test_postgres_round_trip(client, editor, viewer, pg_config):
    result = await round_trip(client, editor, viewer, "postgres", pg_config, "customers")
    fields = {f["name"]: f for f in result["stream"]["fields"]}
    assert fields["id"]["primary_key"] is True and fields["id"]["type"] == "integer"
    assert fields["email"]["nullable"] is False
    assert fields["updated_at"]["type"] == "datetime"
    assert fields["balance"]["native_type"].startswith("numeric")
    assert result["stream"]["row_estimate"] is not None
    first = result["preview"]["rows"][0]
    assert isinstance(first["balance"], str | float)  # decimals stay JSON-safe
    assert isinstance(first["updated_at"], str)


async def test_mysql_round_trip(client, editor, viewer, mysql_config):
    result = await round_trip(client, editor, viewer, "mysql", mysql_config, "orders")
    fields = {f["name"]: f for f in result["stream"]["fields"]}
    assert fields["id"]["primary_key"] is True
    assert fields["created_at"]["type"] == "datetime"
    assert result["preview"]["rows"][0]["customer"] == "ann"


async def test_sqlite_round_trip(client, server, editor, viewer):
    path = make_sqlite(server.data_dir)
    result = await round_trip(client, editor, viewer, "sqlite", {"path": path}, "events")
    assert [r["kind"] for r in result["preview"]["rows"]] == ["open", "close"]


async def test_http_api_round_trip_follows_pages(client, editor, viewer, api_url):
    config = http_api_config(api_url)
    result = await round_trip(client, editor, viewer, "http_api", config, "items")
    names = {f["name"] for f in result["stream"]["fields"]}
    assert {"id", "address.city", "updated_at"} <= names  # nested objects flattened
    connector_id = result["connector"]["id"]
    # 12 records over pages of 5: a preview of 7 needs the second page.
    seven = await client.post(
        f"/api/v1/connectors/{connector_id}/preview",
        headers=editor.headers,
        json={"stream": "items", "limit": 7},
    )
    assert [r["id"] for r in seven.json()["rows"]] == list(range(1, 8))


async def test_file_round_trip(client, server, editor, viewer):
    path = make_csv(server.data_dir)
    name = path.rsplit("/", 1)[1]
    result = await round_trip(client, editor, viewer, "file", {"path": path}, name)
    fields = {f["name"]: f["type"] for f in result["stream"]["fields"]}
    assert fields == {"order_id": "integer", "amount": "number", "ordered_at": "date"}


async def test_dataset_round_trip(client, server, editor, viewer):
    name = await make_dataset(server.data_dir)
    result = await round_trip(client, editor, viewer, "dataset", {"dataset": name}, name)
    assert result["preview"]["rows"][0] == {"sku": "a", "qty": 1}


# --- failure categories -----------------------------------------------------------------------


async def test_wrong_credentials_are_auth(client, editor, pg_config, mysql_config, api_url):
    # The local PostgreSQL trusts every known role: bad credentials = a role that does not exist.
    pg = await connection_test(
        client, editor, "postgres", {**pg_config, "user": "nobody_here", "password": "x"}
    )
    my = await connection_test(client, editor, "mysql", {**mysql_config, "password": "wrong"})
    api = await connection_test(
        client,
        editor,
        "http_api",
        http_api_config(api_url, "secure/items", auth={"type": "bearer", "token": "wrong"}),
    )
    for result in (pg, my, api):
        assert result["ok"] is False
        assert result["error"]["category"] == "auth", result
    assert my["error"]["field"] == "/password"
    right = http_api_config(api_url, "secure/items", auth={"type": "bearer", "token": API_TOKEN})
    assert (await connection_test(client, editor, "http_api", right))["ok"] is True


@pytest.mark.parametrize("type_", ["postgres", "mysql"])
async def test_unknown_host_is_dns(client, editor, pg_config, mysql_config, type_):
    config = {"postgres": pg_config, "mysql": mysql_config}[type_]
    result = await connection_test(client, editor, type_, {**config, "host": "db.nowhere.invalid"})
    assert result["error"]["category"] == "dns"
    assert result["error"]["field"] == "/host"


async def test_http_api_unknown_host_is_dns(client, editor):
    config = http_api_config("http://api.nowhere.invalid")
    assert (await connection_test(client, editor, "http_api", config))["error"]["category"] == "dns"


@pytest.mark.parametrize("type_", ["postgres", "mysql", "http_api"])
async def test_closed_port_is_connect(client, editor, pg_config, mysql_config, type_):
    port = closed_port()
    config = {
        "postgres": {**pg_config, "port": port},
        "mysql": {**mysql_config, "port": port},
        "http_api": http_api_config(f"http://127.0.0.1:{port}"),
    }[type_]
    result = await connection_test(client, editor, type_, config)
    assert result["ok"] is False
    assert result["error"]["category"] == "connect", result


@pytest.mark.parametrize("type_", ["postgres", "mysql", "http_api"])
async def test_silent_server_is_timeout(client, editor, pg_config, mysql_config, type_):
    with silent_port() as port:
        config = {
            "postgres": {**pg_config, "port": port, "connect_timeout": 1},
            "mysql": {**mysql_config, "port": port, "connect_timeout": 1},
            "http_api": http_api_config(f"http://127.0.0.1:{port}", timeout_s=1),
        }[type_]
        result = await connection_test(client, editor, type_, config)
    assert result["ok"] is False
    assert result["error"]["category"] == "timeout", result


async def test_the_request_deadline_bounds_a_slow_connector(client, editor, pg_config):
    # The connector would wait 30 s; the test's own deadline answers first.
    with silent_port() as port:
        started = time.monotonic()
        result = await connection_test(
            client,
            editor,
            "postgres",
            {**pg_config, "port": port, "connect_timeout": 30},
            timeout_s=1,
        )
    assert result["error"]["category"] == "timeout"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "host", ["169.254.169.254", "0xa9fea9fe", "::ffff:169.254.169.254", "[fe80::1]"]
)
async def test_metadata_and_link_local_addresses_are_refused(client, editor, pg_config, host):
    result = await connection_test(client, editor, "postgres", {**pg_config, "host": host})
    assert result["error"]["category"] == "permission", result
    assert result["error"]["field"] == "/host"


async def test_http_api_to_the_metadata_service_is_refused(client, editor):
    config = http_api_config("http://169.254.169.254/latest/meta-data")
    result = await connection_test(client, editor, "http_api", config)
    assert result["error"]["category"] == "permission"


@pytest.mark.skipif(MODE != "scaled", reason="only scaled mode has a network database/Redis")
async def test_the_platforms_own_database_and_redis_are_refused(client, editor, pg_config):
    database = await connection_test(
        client, editor, "postgres", {**pg_config, "host": "127.0.0.1", "port": 5432}
    )
    assert database["error"]["category"] == "permission", database
    via_name = await connection_test(
        client, editor, "postgres", {**pg_config, "host": "localhost", "port": 5432}
    )
    assert via_name["error"]["category"] == "permission"
    redis = await connection_test(
        client, editor, "http_api", http_api_config("http://127.0.0.1:6379")
    )
    assert redis["error"]["category"] == "permission", redis


async def test_invalid_config_is_an_answer_with_a_pointer(client, editor, pg_config):
    missing_host = {k: v for k, v in pg_config.items() if k != "host"}
    result = await connection_test(client, editor, "postgres", missing_host)
    assert result == {
        "ok": False,
        "latency_ms": 0.0,
        "error": {
            "category": "invalid_config",
            "message": result["error"]["message"],
            "field": "/host",
        },
    }
    bad_port = await connection_test(client, editor, "postgres", {**pg_config, "port": "x"})
    assert bad_port["error"]["field"] == "/port"


async def test_file_outside_data_dir_and_missing_file(client, editor):
    outside = await connection_test(client, editor, "file", {"path": "../../etc/passwd"})
    assert outside["error"]["category"] == "permission"
    missing = await connection_test(client, editor, "file", {"path": "no/such/file.csv"})
    assert missing["error"]["category"] in ("not_found", "invalid_config")
    assert missing["ok"] is False


# --- roles and bad input ----------------------------------------------------------------------


async def test_viewers_cannot_test_or_preview(client, editor, viewer, pg_config):
    connector = await create_connector(client, editor, "postgres", pg_config)
    base = f"/api/v1/connectors/{connector['id']}"
    unsaved = await client.post(
        "/api/v1/connectors/test", headers=viewer.headers, json={"type": "postgres", "config": {}}
    )
    assert unsaved.status_code == 403
    assert (await client.post(f"{base}/test", headers=viewer.headers, json={})).status_code == 403
    preview = await client.post(
        f"{base}/preview", headers=viewer.headers, json={"stream": "customers"}
    )
    assert preview.status_code == 403
    refresh = await client.get(f"{base}/schema?refresh=true", headers=viewer.headers)
    assert refresh.status_code == 403
    assert (await client.get(f"{base}/recommendations", headers=viewer.headers)).status_code == 200


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"type": "oracle", "config": {}}, "/type"),
        ({"type": "postgres", "config": {}, "timeout_s": 0}, "/timeout_s"),
        ({"type": "postgres", "config": {}, "timeout_s": 3600}, "/timeout_s"),
        ({"type": "postgres", "config": "x"}, "/config"),
        ({"type": "postgres", "config": {}, "extra": 1}, "/extra"),
    ],
)
async def test_bad_test_requests_are_422(client, editor, body, pointer):
    response = await client.post("/api/v1/connectors/test", headers=editor.headers, json=body)
    assert response.status_code == 422
    assert pointer in {e["pointer"] for e in response.json()["errors"]}


async def test_bad_preview_requests(client, server, editor):
    connector = await create_connector(
        client, editor, "sqlite", {"path": make_sqlite(server.data_dir)}
    )
    url = f"/api/v1/connectors/{connector['id']}/preview"
    too_many = await client.post(
        url, headers=editor.headers, json={"stream": "events", "limit": 10**6}
    )
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["pointer"] == "/limit"
    unknown = await client.post(url, headers=editor.headers, json={"stream": "nope"})
    assert unknown.status_code in (404, 422)
    no_body = await client.post(url, headers=editor.headers)
    assert no_body.status_code == 400
    missing = await client.post(
        "/api/v1/connectors/00000000-0000-0000-0000-000000000000/preview",
        headers=editor.headers,
        json={"stream": "events"},
    )
    assert missing.status_code == 404
    malformed = await client.post(
        "/api/v1/connectors/not-a-uuid/test", headers=editor.headers, json={}
    )
    assert malformed.status_code == 404


async def test_recommendations_from_the_discovered_schema(
    client, editor, viewer, pg_config, api_url
):
    connector = await create_connector(client, editor, "postgres", pg_config)
    response = await client.get(
        f"/api/v1/connectors/{connector['id']}/recommendations", headers=viewer.headers
    )
    assert response.status_code == 200, response.text
    [customers] = [s for s in response.json()["streams"] if s["stream"] == "customers"]
    assert customers["primary_key"] == ["id"]
    assert customers["primary_key_source"] == "declared"
    assert customers["cursor_field"] == "updated_at"
    assert customers["sync_mode"] == "incremental"
    assert 1 <= customers["batch_size"] <= 500_000

    api = await create_connector(client, editor, "http_api", http_api_config(api_url))
    items = (
        await client.get(f"/api/v1/connectors/{api['id']}/recommendations", headers=viewer.headers)
    ).json()["streams"][0]
    assert items["primary_key"] == ["id"]
    assert items["cursor_field"] == "updated_at"


@pytest.mark.skipif(
    MODE == "scaled", reason="the platform database is SQLite only in embedded mode"
)
async def test_the_platform_database_file_is_out_of_reach(client, editor):
    for path in ("aggregator.sqlite3", "./sub/../aggregator.sqlite3"):
        result = await connection_test(client, editor, "sqlite", {"path": path})
        assert result["ok"] is False
        assert result["error"]["category"] == "permission"
