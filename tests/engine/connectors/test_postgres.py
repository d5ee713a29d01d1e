"""PostgreSQL connector against the local server: one fresh database per test."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import polars as pl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.connectors.base import ConnectorContext, ReadRequest, WriteRequest
from engine.connectors.errors import ConnectorError
from engine.connectors.postgres import RELATIONS_PER_CHUNK, PostgresConnector
from engine.connectors.sql_common import client_ssl_context
from engine.schema import LogicalType, StreamSchema

connector = PostgresConnector()

SHOP_DDL = """
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    email varchar(200),
    balance numeric(12, 2),
    active boolean DEFAULT true,
    tags text[],
    meta jsonb,
    updated_at timestamptz NOT NULL
);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    amount double precision,
    placed_on date
);
CREATE TABLE order_lines (
    order_id bigint REFERENCES orders (id),
    line_no smallint,
    sku uuid,
    PRIMARY KEY (order_id, line_no)
);
CREATE VIEW active_customers AS SELECT id, name FROM customers WHERE active;
INSERT INTO customers (name, email, balance, active, tags, meta, updated_at) VALUES
    ('Ada', 'ada@example.com', 10.50, true, '{a,b}', '{"tier": 1}', '2024-01-01 10:00:00+00'),
    ('Bob', NULL, NULL, false, NULL, NULL, '2024-01-02 10:00:00+00'),
    ('Cy', 'cy@example.com', 3.00, true, '{}', '[1, 2]', '2024-01-03 10:00:00+00');
INSERT INTO orders VALUES (1, 1, 9.5, '2024-02-01'), (2, 3, 1.25, NULL);
ANALYZE;
"""


async def read_all(config: dict[str, Any], ctx: ConnectorContext, **request: Any) -> pl.DataFrame:
    frames = [f async for f in connector.read(config, ReadRequest(**request), ctx)]
    return pl.concat(frames)


async def write(
    config: dict[str, Any],
    ctx: ConnectorContext,
    stream: str,
    mode: str,
    *frames: pl.DataFrame,
    primary_key: list[str] | None = None,
) -> int:
    request = WriteRequest(stream=stream, mode=mode, primary_key=primary_key or [])
    writer = await connector.open_writer(config, request, ctx)
    for frame in frames:
        await writer.write_batch(frame)
    return (await writer.commit()).rows_written


async def rows(pg: asyncpg.Connection, query: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await pg.fetch(query)]


# --- spec ------------------------------------------------------------------------------------


def test_spec_is_a_valid_form_with_secrets_marked() -> None:
    spec = connector.spec()
    jsonschema.Draft202012Validator.check_schema(spec.config_schema)
    props = spec.config_schema["properties"]
    assert {"host", "port", "database", "user", "password", "sslmode", "schema"} <= set(props)
    assert props["password"]["writeOnly"] is True
    assert props["password"]["format"] == "password"
    assert spec.secret_fields == ["/password"]
    assert spec.ui_schema["password"]["ui:widget"] == "password"
    assert set(props) <= set(spec.ui_schema["ui:order"])
    assert spec.category == "database" and spec.direction == "both"


# --- check -----------------------------------------------------------------------------------


async def test_check_succeeds(pg_config: dict[str, Any], ctx: ConnectorContext) -> None:
    result = await connector.check(pg_config, ctx)
    assert result.ok, result.error
    assert result.latency_ms > 0


async def test_check_unknown_user_is_auth(pg_config, ctx) -> None:
    # The local server trusts every known role, so bad credentials = a role that does not exist.
    config = {**pg_config, "user": "no_such_user", "password": "wrong"}
    result = await connector.check(config, ctx)
    assert not result.ok
    assert result.error.category == "auth"
    assert "no_such_user" in result.error.message


async def test_check_unresolvable_host_is_dns(pg_config, ctx) -> None:
    result = await connector.check({**pg_config, "host": "nonexistent.invalid"}, ctx)
    assert result.error.category == "dns"
    assert result.error.field == "/host"


async def test_check_closed_port_is_connect(pg_config, ctx) -> None:
    result = await connector.check({**pg_config, "port": 1}, ctx)
    assert result.error.category == "connect"
    assert result.error.field == "/port"


async def test_check_silent_server_times_out(pg_config, ctx, silent_port) -> None:
    started = time.monotonic()
    result = await connector.check({**pg_config, "port": silent_port, "connect_timeout": 1}, ctx)
    assert result.error.category == "timeout"
    assert time.monotonic() - started < 4


async def test_check_missing_database_is_not_found(pg_config, ctx) -> None:
    result = await connector.check({**pg_config, "database": "no_such_database"}, ctx)
    assert result.error.category == "not_found"
    assert result.error.field == "/database"


async def test_check_missing_schema_is_not_found(pg_config, ctx) -> None:
    result = await connector.check({**pg_config, "schema": "no_such_schema"}, ctx)
    assert result.error.category == "not_found"
    assert result.error.field == "/schema"


async def test_check_invalid_config_points_at_field(pg_config, ctx) -> None:
    config = {k: v for k, v in pg_config.items() if k != "host"}
    result = await connector.check(config, ctx)
    assert result.error.category == "invalid_config"
    assert result.error.field == "/host"
    result = await connector.check({**pg_config, "port": 70000}, ctx)
    assert result.error.field == "/port"


async def test_connections_go_to_the_address_the_guard_returns(pg_config, tmp_path) -> None:
    asked: list[tuple[str, int]] = []

    async def guard(host: str, port: int) -> str:
        asked.append((host, port))
        if host == "metadata.internal":
            raise ConnectorError("permission", "address not allowed", "/host")
        return "127.0.0.1"

    ctx = ConnectorContext(data_dir=tmp_path, network_guard=guard)
    assert (await connector.check({**pg_config, "host": "db.alias.test"}, ctx)).ok
    refused = await connector.check({**pg_config, "host": "metadata.internal"}, ctx)
    assert refused.error.category == "permission"
    assert asked == [("db.alias.test", 5432), ("metadata.internal", 5432)]


# --- discover --------------------------------------------------------------------------------


async def test_discover_tables_views_keys_and_types(pg_config, pg, ctx) -> None:
    await pg.execute(SHOP_DDL)
    streams = {s.name: s for s in await connector.discover(pg_config, ctx)}
    assert set(streams) == {"customers", "orders", "order_lines", "active_customers"}

    customers = streams["customers"]
    assert customers.kind == "table"
    assert customers.row_estimate == 3
    fields = {f.name: f for f in customers.fields}
    assert [f.name for f in customers.fields][:3] == ["id", "name", "email"]
    assert fields["id"].primary_key and fields["id"].type == LogicalType.INTEGER
    assert not fields["name"].nullable and fields["email"].nullable
    assert fields["email"].native_type == "character varying(200)"
    assert fields["balance"].type == LogicalType.DECIMAL
    assert fields["active"].type == LogicalType.BOOLEAN
    assert fields["tags"].type == LogicalType.JSON and fields["tags"].native_type == "text[]"
    assert fields["meta"].type == LogicalType.JSON
    assert fields["updated_at"].type == LogicalType.DATETIME

    assert streams["orders"].foreign_keys == [
        {"columns": ["customer_id"], "ref_table": "customers", "ref_columns": ["id"]}
    ]
    lines = streams["order_lines"]
    assert [f.name for f in lines.fields if f.primary_key] == ["order_id", "line_no"]
    assert {f.name: f.type for f in lines.fields}["sku"] == LogicalType.STRING

    view = streams["active_customers"]
    assert view.kind == "view" and view.row_estimate is None
    assert [f.name for f in view.fields] == ["id", "name"]


async def test_discover_of_many_tables_keeps_every_column_and_key(pg_config, pg, ctx) -> None:
    # More relations than one catalog chunk (RELATIONS_PER_CHUNK), so columns arrive in several
    # chunks; a dropped column in the last one shifts the numbers its foreign key refers to.
    tables = 2 * RELATIONS_PER_CHUNK + 50
    ddl = [
        f"CREATE TABLE t{i:04d} (id bigint PRIMARY KEY, gone int, "
        + (f"parent_id bigint REFERENCES t{i - 1:04d} (id), " if i else "parent_id bigint, ")
        + f"label varchar({10 + i % 7}) NOT NULL, amount numeric(12,2));"
        for i in range(tables)
    ]
    last = f"t{tables - 1:04d}"
    await pg.execute("\n".join(ddl) + f"ALTER TABLE {last} DROP COLUMN gone;")
    streams = {s.name: s for s in await connector.discover(pg_config, ctx)}

    assert len(streams) == tables
    for i in (0, RELATIONS_PER_CHUNK - 1, RELATIONS_PER_CHUNK, 2 * RELATIONS_PER_CHUNK + 7):
        stream = streams[f"t{i:04d}"]
        assert [f.name for f in stream.fields] == ["id", "gone", "parent_id", "label", "amount"]
        assert [f.name for f in stream.fields if f.primary_key] == ["id"]
        assert {f.name: f.native_type for f in stream.fields}["label"] == (
            f"character varying({10 + i % 7})"
        )
        expected = [{"columns": ["parent_id"], "ref_table": f"t{i - 1:04d}", "ref_columns": ["id"]}]
        assert stream.foreign_keys == (expected if i else [])
    tail = streams[last]
    assert [f.name for f in tail.fields] == ["id", "parent_id", "label", "amount"]
    assert tail.foreign_keys == [
        {"columns": ["parent_id"], "ref_table": f"t{tables - 2:04d}", "ref_columns": ["id"]}
    ]


async def test_discover_respects_the_schema_setting(pg_config, pg, ctx) -> None:
    await pg.execute(
        "CREATE SCHEMA sales; CREATE TABLE sales.deals (id int); CREATE TABLE t (x int)"
    )
    names = [s.name for s in await connector.discover({**pg_config, "schema": "sales"}, ctx)]
    assert names == ["deals"]


# --- read ------------------------------------------------------------------------------------


async def test_read_full_refresh_in_batches(pg_config, pg, ctx) -> None:
    await pg.execute(SHOP_DDL)
    request = ReadRequest(stream="customers", batch_size=2)
    frames = [f async for f in connector.read(pg_config, request, ctx)]
    assert [f.height for f in frames] == [2, 1]
    frame = pl.concat(frames).sort("id")
    assert frame["name"].to_list() == ["Ada", "Bob", "Cy"]
    assert frame["balance"].to_list() == [Decimal("10.50"), None, Decimal("3.00")]
    assert frame["active"].to_list() == [True, False, True]
    assert frame["tags"].to_list() == ['["a", "b"]', None, "[]"]
    assert frame["meta"].to_list() == ['{"tier": 1}', None, "[1, 2]"]
    assert frame.schema["updated_at"] == pl.Datetime("us", "UTC")
    assert frame["updated_at"][0] == dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)

    limited = await read_all(pg_config, ctx, stream="orders", limit=1)
    assert limited.height == 1
    view = await read_all(pg_config, ctx, stream="active_customers")
    assert sorted(view["name"].to_list()) == ["Ada", "Cy"]


async def test_read_incremental_returns_rows_past_the_cursor_in_order(pg_config, pg, ctx) -> None:
    await pg.execute(SHOP_DDL)
    first = await read_all(
        pg_config, ctx, stream="customers", sync_mode="incremental", cursor_field="updated_at"
    )
    assert first["name"].to_list() == ["Ada", "Bob", "Cy"]
    state = {"cursor": first["updated_at"][0].isoformat()}  # as the caller would persist it
    later = await read_all(
        pg_config,
        ctx,
        stream="customers",
        sync_mode="incremental",
        cursor_field="updated_at",
        state=state,
    )
    assert later["name"].to_list() == ["Bob", "Cy"]
    by_id = await read_all(
        pg_config,
        ctx,
        stream="orders",
        sync_mode="incremental",
        cursor_field="id",
        state={"cursor": 1},
    )
    assert by_id["id"].to_list() == [2]


async def test_read_with_nothing_new_yields_the_columns(pg_config, pg, ctx) -> None:
    await pg.execute(SHOP_DDL)
    frame = await read_all(
        pg_config,
        ctx,
        stream="orders",
        sync_mode="incremental",
        cursor_field="id",
        state={"cursor": 99},
    )
    assert frame.height == 0
    assert frame.columns == ["id", "customer_id", "amount", "placed_on"]


async def test_read_unknown_stream_or_cursor_is_reported(pg_config, pg, ctx) -> None:
    await pg.execute(SHOP_DDL)
    with pytest.raises(ConnectorError) as missing:
        await read_all(pg_config, ctx, stream="nope")
    assert missing.value.category == "not_found"
    with pytest.raises(ConnectorError) as bad_cursor:
        await read_all(
            pg_config, ctx, stream="orders", sync_mode="incremental", cursor_field="nope"
        )
    assert bad_cursor.value.category == "invalid_config"


# --- write -----------------------------------------------------------------------------------

PEOPLE_DDL = """
CREATE TABLE people (id int PRIMARY KEY, name text, score numeric(6, 2));
INSERT INTO people VALUES (1, 'Ada', 1.50), (2, 'Bob', 2.00);
"""


def people(*records: tuple[int, str | None, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [r[0] for r in records],
            "name": [r[1] for r in records],
            "score": [Decimal(r[2]) for r in records],
        },
        schema={"id": pl.Int32, "name": pl.String, "score": pl.Decimal(6, 2)},
    )


async def test_write_append(pg_config, pg, ctx) -> None:
    await pg.execute(PEOPLE_DDL)
    written = await write(
        pg_config, ctx, "people", "append", people((3, "Cy", "3.25")), people((4, "", "0"))
    )
    assert written == 2
    assert await rows(pg, "SELECT id, name, score FROM people ORDER BY id") == [
        (1, "Ada", Decimal("1.50")),
        (2, "Bob", Decimal("2.00")),
        (3, "Cy", Decimal("3.25")),
        (4, "", Decimal("0.00")),  # an empty string stays empty, not NULL
    ]


async def test_write_replace(pg_config, pg, ctx) -> None:
    await pg.execute(PEOPLE_DDL)
    await write(pg_config, ctx, "people", "replace", people((7, None, "7")))
    assert await rows(pg, "SELECT id, name, score FROM people") == [(7, None, Decimal("7.00"))]


async def test_write_upsert_updates_and_inserts_last_value_wins(pg_config, pg, ctx) -> None:
    await pg.execute(PEOPLE_DDL)
    await write(
        pg_config,
        ctx,
        "people",
        "upsert",
        people((2, "Bobby", "2.50"), (3, "Cy", "3")),
        people((3, "Cyd", "3.50")),
    )
    assert await rows(pg, "SELECT id, name, score FROM people ORDER BY id") == [
        (1, "Ada", Decimal("1.50")),
        (2, "Bobby", Decimal("2.50")),
        (3, "Cyd", Decimal("3.50")),
    ]


async def test_aborted_writer_leaves_destination_unchanged(pg_config, pg, ctx) -> None:
    await pg.execute(PEOPLE_DDL)
    for mode in ("append", "replace", "upsert"):
        writer = await connector.open_writer(
            pg_config, WriteRequest(stream="people", mode=mode), ctx
        )
        await writer.write_batch(people((1, "Changed", "9"), (5, "New", "5")))
        await writer.abort()
    assert await rows(pg, "SELECT id, name, score FROM people ORDER BY id") == [
        (1, "Ada", Decimal("1.50")),
        (2, "Bob", Decimal("2.00")),
    ]
    leftovers = await pg.fetchval("SELECT count(*) FROM pg_class WHERE relname LIKE '_da_stg_%'")
    assert leftovers == 0


async def test_failed_commit_leaves_destination_unchanged(pg_config, pg, ctx) -> None:
    await pg.execute(PEOPLE_DDL)
    # id 1 already exists: append's INSERT fails at publish, after staging accepted the rows.
    writer = await connector.open_writer(pg_config, WriteRequest(stream="people"), ctx)
    await writer.write_batch(people((9, "Nine", "9"), (1, "Dup", "1")))
    with pytest.raises(asyncpg.UniqueViolationError):
        await writer.commit()
    assert await rows(pg, "SELECT id FROM people ORDER BY id") == [(1,), (2,)]


async def test_write_creates_missing_table_and_round_trips_types(pg_config, pg, ctx) -> None:
    frame = pl.DataFrame(
        {
            "id": [1, 2],
            "label": ['a,"quoted"\nline', None],
            "ratio": [0.5, float("inf")],
            "amount": [Decimal("1.25"), None],
            "flag": [True, None],
            "day": [dt.date(2024, 5, 1), None],
            "at": [dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC), None],
            "local": [dt.datetime(2024, 5, 1, 12, 30, 1, 250000), None],
            "clock": [dt.time(8, 15, 30), None],
            "blob": [b"\x00\xffdata", None],
            "items": [[1, 2], None],
        },
        schema_overrides={"amount": pl.Decimal(10, 2)},
    )
    await write(pg_config, ctx, "fresh", "append", frame, primary_key=["id"])
    discovered = {s.name: s for s in await connector.discover(pg_config, ctx)}["fresh"]
    assert [f.name for f in discovered.fields if f.primary_key] == ["id"]
    back = (await read_all(pg_config, ctx, stream="fresh")).sort("id")
    expected = frame.with_columns(pl.Series("items", ["[1, 2]", None]))
    assert back.to_dicts() == expected.to_dicts()


async def test_text_that_looks_like_copy_markers_is_kept(pg_config, pg, ctx) -> None:
    # A line holding only \. ends COPY data unless it is quoted.
    notes = pl.DataFrame({"note": ["\\.", "\\N", "", None, "after"]})
    assert await write(pg_config, ctx, "notes", "append", notes) == 5
    stored = await rows(pg, "SELECT note FROM notes")
    assert stored == [("\\.",), ("\\N",), ("",), (None,), ("after",)]


async def test_replace_into_missing_table_with_no_rows_creates_nothing(pg_config, pg, ctx) -> None:
    assert await write(pg_config, ctx, "ghost", "replace") == 0
    assert await pg.fetchval("SELECT to_regclass('public.ghost')") is None


async def test_upsert_without_any_key_is_refused(pg_config, pg, ctx) -> None:
    await pg.execute("CREATE TABLE keyless (id int, name text)")
    with pytest.raises(ConnectorError) as refused:
        await connector.open_writer(pg_config, WriteRequest(stream="keyless", mode="upsert"), ctx)
    assert refused.value.category == "invalid_config"


async def test_discovered_schemas_serialise_like_validated_models(pg_config, pg, ctx) -> None:
    await pg.execute(SHOP_DDL)
    for stream in await connector.discover(pg_config, ctx):
        # What the API sends must survive a JSON round trip unchanged.
        assert StreamSchema.model_validate_json(stream.model_dump_json()) == stream


async def test_domains_and_enums_map_by_what_they_are_built_on(pg_config, pg, ctx) -> None:
    await pg.execute(
        "CREATE DOMAIN positive_amount AS numeric(10, 2) CHECK (VALUE > 0);"
        "CREATE TYPE mood AS ENUM ('happy', 'sad');"
        "CREATE TABLE diary (id int PRIMARY KEY, spent positive_amount, feeling mood);"
        "INSERT INTO diary VALUES (1, 12.50, 'happy')"
    )
    (diary,) = await connector.discover(pg_config, ctx)
    types = {f.name: (f.type, f.native_type) for f in diary.fields}
    assert types["spent"] == (LogicalType.DECIMAL, "positive_amount")
    assert types["feeling"] == (LogicalType.STRING, "mood")
    frame = await read_all(pg_config, ctx, stream="diary")
    assert frame.row(0) == (1, Decimal("12.50"), "happy")


async def test_incremental_state_may_hold_a_datetime(pg_config, pg, ctx) -> None:
    await pg.execute(SHOP_DDL)
    state = {"cursor": dt.datetime(2024, 1, 2, 10, tzinfo=dt.UTC)}
    later = await read_all(
        pg_config,
        ctx,
        stream="customers",
        sync_mode="incremental",
        cursor_field="updated_at",
        state=state,
    )
    assert later["name"].to_list() == ["Cy"]


async def test_abandoned_read_releases_its_connection(pg_config, pg, ctx) -> None:
    await pg.execute(SHOP_DDL)
    reader = connector.read(pg_config, ReadRequest(stream="customers", batch_size=1), ctx)
    first = await anext(reader)
    assert first.height == 1
    await reader.aclose()
    open_sessions = await pg.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'data-aggregator'"
        " AND datname = current_database()"
    )
    assert open_sessions == 0


async def test_write_rejects_unknown_columns_and_missing_keys(pg_config, pg, ctx) -> None:
    await pg.execute(PEOPLE_DDL)
    writer = await connector.open_writer(pg_config, WriteRequest(stream="people"), ctx)
    with pytest.raises(ConnectorError) as unknown:
        await writer.write_batch(pl.DataFrame({"id": [5], "nickname": ["x"]}))
    assert unknown.value.category == "invalid_config" and "nickname" in unknown.value.message
    upsert = WriteRequest(stream="people", mode="upsert")
    writer = await connector.open_writer(pg_config, upsert, ctx)
    with pytest.raises(ConnectorError) as keyless:
        await writer.write_batch(pl.DataFrame({"name": ["no id"]}))
    assert "id" in keyless.value.message
    assert await rows(pg, "SELECT id FROM people ORDER BY id") == [(1,), (2,)]


async def test_write_of_some_columns_leaves_defaults_to_the_table(pg_config, pg, ctx) -> None:
    await pg.execute(
        "CREATE TABLE events (id serial PRIMARY KEY, kind text, seen bool DEFAULT true)"
    )
    await write(pg_config, ctx, "events", "append", pl.DataFrame({"kind": ["a", "b"]}))
    assert await rows(pg, "SELECT id, kind, seen FROM events ORDER BY id") == [
        (1, "a", True),
        (2, "b", True),
    ]


def self_signed_certificate(host: str, directory: Path) -> tuple[str, str, str]:
    """(certificate PEM, certificate file, key file) for `host`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_text(cert_pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_pem, str(cert_file), str(key_file)


async def test_tls_verifies_the_configured_host_not_the_resolved_address(tmp_path: Path) -> None:
    """The SSRF guard hands drivers an IP address; the certificate must still be checked
    against the host name the user configured."""
    cert_pem, cert_file, key_file = self_signed_certificate("db.example.test", tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    server = await asyncio.start_server(
        lambda reader, writer: writer.close(), "127.0.0.1", 0, ssl=server_context
    )
    port = server.sockets[0].getsockname()[1]

    async def handshake(mode: str, configured_host: str) -> None:
        context = client_ssl_context(mode, cert_pem, configured_host)
        # Like the drivers: connect to the address, passing it as server_hostname.
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        writer.close()

    try:
        await handshake("verify-full", "db.example.test")
        await handshake("verify-ca", "another.example.test")  # CA only: any name
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake("verify-full", "another.example.test")
    finally:
        server.close()
        await server.wait_closed()


async def test_check_without_connect_privilege_is_permission(pg_config, pg, ctx) -> None:
    role = f"limited_{uuid.uuid4().hex[:8]}"
    database = pg_config["database"]
    await pg.execute(
        f'CREATE ROLE "{role}" LOGIN; REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC'
    )
    try:
        result = await connector.check({**pg_config, "user": role}, ctx)
        assert result.error.category == "permission"
        assert role in result.error.message
    finally:
        await pg.execute(f'DROP ROLE "{role}"')


async def test_types_without_a_logical_counterpart_read_as_text(pg_config, pg, ctx) -> None:
    await pg.execute(
        "CREATE TABLE odd (id int PRIMARY KEY, u uuid, net inet, span interval, bits bit(3),"
        " spot point, span_ids int4range, amount numeric, clock timetz);"
        "INSERT INTO odd VALUES (1, '00000000-0000-0000-0000-000000000001', '10.0.0.1',"
        " '1 day', B'101', '(1,2)', '[1,5)', 'NaN', '10:00+02'),"
        " (2, NULL, NULL, NULL, NULL, NULL, NULL, 2.5, NULL)"
    )
    (odd,) = await connector.discover(pg_config, ctx)
    types = {f.name: f.type for f in odd.fields}
    assert types["spot"] == types["span_ids"] == types["bits"] == LogicalType.STRING
    frame = (await read_all(pg_config, ctx, stream="odd")).sort("id")
    assert frame.row(0) == (
        1,
        "00000000-0000-0000-0000-000000000001",
        "10.0.0.1/32",
        "1 day",
        "101",
        "(1,2)",
        "[1,5)",
        None,  # numeric NaN: Polars decimals cannot hold it
        "10:00:00+02",
    )
    assert frame["amount"][1] == Decimal("2.5")
