"""MySQL connector against the local MariaDB: one fresh database per test."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from typing import Any

import jsonschema
import polars as pl
import pytest

from engine.connectors.base import ConnectorContext, ReadRequest, WriteRequest
from engine.connectors.errors import ConnectorError
from engine.connectors.mysql import MySQLConnector
from engine.schema import LogicalType
from tests.engine.conftest import MySQLSession

connector = MySQLConnector()

SHOP_DDL = [
    """CREATE TABLE customers (
        id INT AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        email VARCHAR(200),
        balance DECIMAL(12, 2),
        active TINYINT(1) DEFAULT 1,
        meta JSON,
        opens TIME,
        updated_at DATETIME(6) NOT NULL
    )""",
    """CREATE TABLE orders (
        id BIGINT PRIMARY KEY,
        customer_id INT NOT NULL,
        amount DOUBLE,
        placed_on DATE,
        FOREIGN KEY (customer_id) REFERENCES customers (id)
    )""",
    """CREATE TABLE order_lines (
        order_id BIGINT,
        line_no SMALLINT UNSIGNED,
        sku CHAR(36),
        PRIMARY KEY (order_id, line_no),
        CONSTRAINT fk_order FOREIGN KEY (order_id) REFERENCES orders (id)
    )""",
    "CREATE VIEW active_customers AS SELECT id, name FROM customers WHERE active",
    """INSERT INTO customers (name, email, balance, active, meta, opens, updated_at) VALUES
        ('Ada', 'ada@example.com', 10.50, 1, '{"tier": 1}', '08:30:00', '2024-01-01 10:00:00'),
        ('Bob', NULL, NULL, 0, NULL, NULL, '2024-01-02 10:00:00'),
        ('Cy', 'cy@example.com', 3.00, 1, '[1, 2]', '17:00:00.5', '2024-01-03 10:00:00')""",
    "INSERT INTO orders VALUES (1, 1, 9.5, '2024-02-01'), (2, 3, 1.25, NULL)",
    "ANALYZE TABLE customers, orders, order_lines",
]


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


# --- spec ------------------------------------------------------------------------------------


def test_spec_is_a_valid_form_with_secrets_marked() -> None:
    spec = connector.spec()
    jsonschema.Draft202012Validator.check_schema(spec.config_schema)
    props = spec.config_schema["properties"]
    assert {"host", "port", "database", "user", "password", "tls_mode"} <= set(props)
    assert props["port"]["default"] == 3306
    assert props["password"]["writeOnly"] is True
    assert spec.secret_fields == ["/password"]
    assert spec.ui_schema["password"]["ui:widget"] == "password"
    assert set(props) <= set(spec.ui_schema["ui:order"])


# --- check -----------------------------------------------------------------------------------


async def test_check_succeeds(mysql_config, ctx) -> None:
    result = await connector.check(mysql_config, ctx)
    assert result.ok, result.error


async def test_check_prefer_falls_back_to_plain_tcp(mysql_config, ctx) -> None:
    # The local server has TLS disabled: prefer connects anyway, require reports TLS.
    assert (await connector.check({**mysql_config, "tls_mode": "prefer"}, ctx)).ok
    required = await connector.check({**mysql_config, "tls_mode": "require"}, ctx)
    assert required.error.category == "tls"
    assert required.error.field == "/tls_mode"


async def test_check_wrong_password_is_auth(mysql_config, ctx) -> None:
    result = await connector.check({**mysql_config, "password": "wrong"}, ctx)
    assert result.error.category == "auth"
    assert result.error.field == "/password"


async def test_check_unresolvable_host_is_dns(mysql_config, ctx) -> None:
    result = await connector.check({**mysql_config, "host": "nonexistent.invalid"}, ctx)
    assert result.error.category == "dns"
    assert result.error.field == "/host"


async def test_check_closed_port_is_connect(mysql_config, ctx) -> None:
    result = await connector.check({**mysql_config, "port": 1}, ctx)
    assert result.error.category == "connect"


async def test_check_silent_server_times_out(mysql_config, ctx, silent_port) -> None:
    started = time.monotonic()
    config = {**mysql_config, "port": silent_port, "connect_timeout": 1}
    result = await connector.check(config, ctx)
    assert result.error.category == "timeout"
    assert time.monotonic() - started < 4


async def test_check_missing_database_is_not_found(mysql_config, ctx) -> None:
    result = await connector.check({**mysql_config, "database": "no_such_database"}, ctx)
    assert result.error.category == "not_found"
    assert result.error.field == "/database"


async def test_check_invalid_config_points_at_field(mysql_config, ctx) -> None:
    result = await connector.check({**mysql_config, "tls_mode": "sometimes"}, ctx)
    assert result.error.category == "invalid_config"
    assert result.error.field == "/tls_mode"


async def test_connections_go_to_the_address_the_guard_returns(mysql_config, tmp_path) -> None:
    asked = []

    async def guard(host: str, port: int) -> str:
        asked.append(host)
        return "127.0.0.1"

    ctx = ConnectorContext(data_dir=tmp_path, network_guard=guard)
    assert (await connector.check({**mysql_config, "host": "db.alias.test"}, ctx)).ok
    assert asked == ["db.alias.test"]


# --- discover --------------------------------------------------------------------------------


async def test_discover_tables_views_keys_and_types(mysql_config, mysql, ctx) -> None:
    await mysql.execute(*SHOP_DDL)
    streams = {s.name: s for s in await connector.discover(mysql_config, ctx)}
    assert set(streams) == {"customers", "orders", "order_lines", "active_customers"}

    customers = streams["customers"]
    assert customers.kind == "table" and customers.row_estimate == 3
    fields = {f.name: f for f in customers.fields}
    assert list(fields)[:3] == ["id", "name", "email"]
    assert fields["id"].primary_key and fields["id"].type == LogicalType.INTEGER
    assert not fields["name"].nullable and fields["email"].nullable
    assert fields["email"].native_type == "varchar(200)"
    assert fields["balance"].type == LogicalType.DECIMAL
    assert fields["active"].type == LogicalType.BOOLEAN
    assert fields["meta"].type == LogicalType.JSON
    assert fields["opens"].type == LogicalType.TIME
    assert fields["updated_at"].type == LogicalType.DATETIME

    assert streams["orders"].foreign_keys == [
        {"columns": ["customer_id"], "ref_table": "customers", "ref_columns": ["id"]}
    ]
    lines = streams["order_lines"]
    assert [f.name for f in lines.fields if f.primary_key] == ["order_id", "line_no"]
    assert lines.foreign_keys[0]["ref_table"] == "orders"

    view = streams["active_customers"]
    assert view.kind == "view" and view.row_estimate is None
    assert [f.name for f in view.fields] == ["id", "name"]


# --- read ------------------------------------------------------------------------------------


async def test_read_full_refresh_in_batches(mysql_config, mysql, ctx) -> None:
    await mysql.execute(*SHOP_DDL)
    request = ReadRequest(stream="customers", batch_size=2)
    frames = [f async for f in connector.read(mysql_config, request, ctx)]
    assert [f.height for f in frames] == [2, 1]
    frame = pl.concat(frames).sort("id")
    assert frame["name"].to_list() == ["Ada", "Bob", "Cy"]
    assert frame["balance"].to_list() == [Decimal("10.50"), None, Decimal("3.00")]
    assert frame["active"].to_list() == [True, False, True]
    assert frame["meta"].to_list() == ['{"tier": 1}', None, "[1, 2]"]
    assert frame["opens"].to_list() == [dt.time(8, 30), None, dt.time(17, 0)]
    assert frame["updated_at"][0] == dt.datetime(2024, 1, 1, 10)
    assert (await read_all(mysql_config, ctx, stream="orders", limit=1)).height == 1
    view = await read_all(mysql_config, ctx, stream="active_customers")
    assert sorted(view["name"].to_list()) == ["Ada", "Cy"]


async def test_read_incremental_returns_rows_past_the_cursor_in_order(
    mysql_config, mysql, ctx
) -> None:
    await mysql.execute(*SHOP_DDL)
    first = await read_all(
        mysql_config, ctx, stream="customers", sync_mode="incremental", cursor_field="updated_at"
    )
    assert first["name"].to_list() == ["Ada", "Bob", "Cy"]
    state = {"cursor": first["updated_at"][0].isoformat()}
    later = await read_all(
        mysql_config,
        ctx,
        stream="customers",
        sync_mode="incremental",
        cursor_field="updated_at",
        state=state,
    )
    assert later["name"].to_list() == ["Bob", "Cy"]
    by_id = await read_all(
        mysql_config,
        ctx,
        stream="orders",
        sync_mode="incremental",
        cursor_field="id",
        state={"cursor": 1},
    )
    assert by_id["id"].to_list() == [2]


async def test_read_unknown_stream_is_not_found(mysql_config, mysql, ctx) -> None:
    with pytest.raises(ConnectorError) as missing:
        await read_all(mysql_config, ctx, stream="nope")
    assert missing.value.category == "not_found"


# --- write -----------------------------------------------------------------------------------

PEOPLE_DDL = [
    "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(50), score DECIMAL(6, 2))",
    "INSERT INTO people VALUES (1, 'Ada', 1.50), (2, 'Bob', 2.00)",
]


def people(*records: tuple[int, str | None, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [r[0] for r in records],
            "name": [r[1] for r in records],
            "score": [Decimal(r[2]) for r in records],
        },
        schema={"id": pl.Int32, "name": pl.String, "score": pl.Decimal(6, 2)},
    )


async def people_rows(mysql: MySQLSession) -> list[tuple[Any, ...]]:
    return await mysql.fetch("SELECT id, name, score FROM people ORDER BY id")


async def test_write_append(mysql_config, mysql, ctx) -> None:
    await mysql.execute(*PEOPLE_DDL)
    written = await write(
        mysql_config, ctx, "people", "append", people((3, "Cy", "3.25")), people((4, "", "0"))
    )
    assert written == 2
    assert await people_rows(mysql) == [
        (1, "Ada", Decimal("1.50")),
        (2, "Bob", Decimal("2.00")),
        (3, "Cy", Decimal("3.25")),
        (4, "", Decimal("0.00")),
    ]


async def test_write_replace(mysql_config, mysql, ctx) -> None:
    await mysql.execute(*PEOPLE_DDL)
    await write(mysql_config, ctx, "people", "replace", people((7, None, "7")))
    assert await people_rows(mysql) == [(7, None, Decimal("7.00"))]
    tables = await mysql.fetch("SHOW TABLES")
    assert tables == [("people",)]  # no staging or retired table left behind


async def test_write_upsert_updates_and_inserts_last_value_wins(mysql_config, mysql, ctx) -> None:
    await mysql.execute(*PEOPLE_DDL)
    await write(
        mysql_config,
        ctx,
        "people",
        "upsert",
        people((2, "Bobby", "2.50"), (3, "Cy", "3")),
        people((3, "Cyd", "3.50")),
    )
    assert await people_rows(mysql) == [
        (1, "Ada", Decimal("1.50")),
        (2, "Bobby", Decimal("2.50")),
        (3, "Cyd", Decimal("3.50")),
    ]


async def test_aborted_writer_leaves_destination_unchanged(mysql_config, mysql, ctx) -> None:
    await mysql.execute(*PEOPLE_DDL)
    for mode in ("append", "replace", "upsert"):
        writer = await connector.open_writer(
            mysql_config, WriteRequest(stream="people", mode=mode), ctx
        )
        await writer.write_batch(people((1, "Changed", "9"), (5, "New", "5")))
        await writer.abort()
    assert await people_rows(mysql) == [(1, "Ada", Decimal("1.50")), (2, "Bob", Decimal("2.00"))]
    assert await mysql.fetch("SHOW TABLES") == [("people",)]


async def test_failed_commit_leaves_destination_unchanged(mysql_config, mysql, ctx) -> None:
    await mysql.execute(*PEOPLE_DDL)
    writer = await connector.open_writer(mysql_config, WriteRequest(stream="people"), ctx)
    await writer.write_batch(people((9, "Nine", "9"), (1, "Dup", "1")))
    with pytest.raises(Exception, match="Duplicate"):
        await writer.commit()
    assert await people_rows(mysql) == [(1, "Ada", Decimal("1.50")), (2, "Bob", Decimal("2.00"))]


async def test_write_creates_missing_table_and_round_trips_types(mysql_config, mysql, ctx) -> None:
    frame = pl.DataFrame(
        {
            "id": [1, 2],
            "label": ["a,'quoted'\nline \\ ü", None],
            "ratio": [0.5, None],
            "amount": [Decimal("1.25"), None],
            "flag": [True, None],
            "day": [dt.date(2024, 5, 1), None],
            "local": [dt.datetime(2024, 5, 1, 12, 30, 1, 250000), None],
            "clock": [dt.time(8, 15, 30), None],
            "blob": [b"\x00\xff'data", None],
        },
        schema_overrides={"amount": pl.Decimal(10, 2)},
    )
    await write(mysql_config, ctx, "fresh", "replace", frame, primary_key=["id"])
    discovered = {s.name: s for s in await connector.discover(mysql_config, ctx)}["fresh"]
    assert [f.name for f in discovered.fields if f.primary_key] == ["id"]
    back = (await read_all(mysql_config, ctx, stream="fresh")).sort("id")
    assert back.to_dicts() == frame.to_dicts()


async def test_upsert_without_any_key_is_refused(mysql_config, mysql, ctx) -> None:
    await mysql.execute("CREATE TABLE keyless (id INT, name TEXT)")
    with pytest.raises(ConnectorError) as refused:
        await connector.open_writer(
            mysql_config, WriteRequest(stream="keyless", mode="upsert"), ctx
        )
    assert refused.value.category == "invalid_config"


async def test_write_of_some_columns_leaves_defaults_to_the_table(mysql_config, mysql, ctx) -> None:
    await mysql.execute(
        "CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, kind TEXT, seen BOOL DEFAULT 1)",
        "INSERT INTO events (kind) VALUES ('first')",
    )
    await write(mysql_config, ctx, "events", "append", pl.DataFrame({"kind": ["a", "b"]}))
    assert await mysql.fetch("SELECT id, kind, seen FROM events ORDER BY id") == [
        (1, "first", 1),
        (2, "a", 1),
        (3, "b", 1),
    ]


async def test_write_rejects_unknown_columns(mysql_config, mysql, ctx) -> None:
    await mysql.execute(*PEOPLE_DDL)
    writer = await connector.open_writer(mysql_config, WriteRequest(stream="people"), ctx)
    with pytest.raises(ConnectorError) as unknown:
        await writer.write_batch(pl.DataFrame({"id": [5], "nickname": ["x"]}))
    assert unknown.value.category == "invalid_config"
    assert await mysql.fetch("SHOW TABLES") == [("people",)]


async def test_check_without_database_grant_is_permission(mysql_config, mysql, ctx) -> None:
    user = f"limited_{uuid.uuid4().hex[:8]}"
    await mysql.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'secret'")
    try:
        result = await connector.check({**mysql_config, "user": user, "password": "secret"}, ctx)
        assert result.error.category == "permission"
        assert result.error.field == "/user"
    finally:
        await mysql.execute(f"DROP USER '{user}'@'127.0.0.1'")
