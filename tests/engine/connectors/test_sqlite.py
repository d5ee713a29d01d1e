"""SQLite connector on files in a per-test data directory."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import polars as pl
import pytest

from engine.connectors.base import ConnectorContext, ReadRequest, WriteRequest
from engine.connectors.errors import ConnectorError
from engine.connectors.sqlite import SQLiteConnector
from engine.schema import LogicalType

connector = SQLiteConnector()

SHOP_DDL = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email VARCHAR(200),
    balance DECIMAL(12, 2),
    active BOOLEAN,
    meta JSON,
    updated_at DATETIME NOT NULL,
    anything
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    amount REAL,
    placed_on DATE
);
CREATE TABLE order_lines (
    order_id INTEGER REFERENCES orders,
    line_no INTEGER,
    blob BLOB,
    PRIMARY KEY (order_id, line_no)
);
CREATE VIEW active_customers AS SELECT id, name FROM customers WHERE active;
INSERT INTO customers VALUES
    (1, 'Ada', 'ada@example.com', 10.5, 1, '{"tier": 1}', '2024-01-01 10:00:00', 'x'),
    (2, 'Bob', NULL, NULL, 0, NULL, '2024-01-02T10:00:00.250', 2),
    (3, 'Cy', 'cy@example.com', 3, 1, '[1, 2]', '2024-01-03 10:00:00', NULL);
INSERT INTO orders VALUES (1, 1, 9.5, '2024-02-01'), (2, 3, 1.25, NULL);
"""


@pytest.fixture
def shop(ctx: ConnectorContext) -> dict[str, Any]:
    with sqlite3.connect(ctx.data_dir / "shop.db") as conn:
        conn.executescript(SHOP_DDL)
    conn.close()
    return {"path": "shop.db"}


def query(ctx: ConnectorContext, sql: str, path: str = "shop.db") -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(ctx.data_dir / path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


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


# --- spec and check --------------------------------------------------------------------------


def test_spec_is_a_valid_form() -> None:
    spec = connector.spec()
    jsonschema.Draft202012Validator.check_schema(spec.config_schema)
    assert spec.config_schema["required"] == ["path"]
    assert set(spec.config_schema["properties"]) <= set(spec.ui_schema["ui:order"])


async def test_check_succeeds(shop, ctx) -> None:
    assert (await connector.check(shop, ctx)).ok


async def test_check_missing_file_is_not_found_and_creates_nothing(ctx) -> None:
    result = await connector.check({"path": "missing.db"}, ctx)
    assert result.error.category == "not_found"
    assert result.error.field == "/path"
    assert not (ctx.data_dir / "missing.db").exists()


async def test_check_refuses_paths_outside_the_data_directory(shop, ctx, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "other.db"
    sqlite3.connect(outside).close()
    for path in ("../escape.db", str(outside)):
        result = await connector.check({"path": path}, ctx)
        assert result.error.category == "permission", path
        assert result.error.field == "/path"
    allowed = ConnectorContext(data_dir=ctx.data_dir, extra={"allow_any_sqlite_path": True})
    assert (await connector.check({"path": str(outside)}, allowed)).ok
    inside_absolute = str(ctx.data_dir / "shop.db")
    assert (await connector.check({"path": inside_absolute}, ctx)).ok


async def test_check_file_that_is_not_a_database(ctx) -> None:
    (ctx.data_dir / "notes.db").write_text("just some text, not a database" * 100)
    result = await connector.check({"path": "notes.db"}, ctx)
    assert result.error.category == "invalid_config"


async def test_check_invalid_config(ctx) -> None:
    result = await connector.check({"path": ""}, ctx)
    assert result.error.category == "invalid_config"
    assert result.error.field == "/path"


# --- discover --------------------------------------------------------------------------------


async def test_discover_tables_views_keys_and_types(shop, ctx) -> None:
    streams = {s.name: s for s in await connector.discover(shop, ctx)}
    assert set(streams) == {"customers", "orders", "order_lines", "active_customers"}
    fields = {f.name: f for f in streams["customers"].fields}
    assert list(fields)[:3] == ["id", "name", "email"]
    assert fields["id"].primary_key and fields["id"].type == LogicalType.INTEGER
    assert not fields["name"].nullable and fields["email"].nullable
    assert fields["email"].native_type == "VARCHAR(200)"
    assert fields["balance"].type == LogicalType.DECIMAL
    assert fields["active"].type == LogicalType.BOOLEAN
    assert fields["meta"].type == LogicalType.JSON
    assert fields["updated_at"].type == LogicalType.DATETIME
    assert fields["anything"].type == LogicalType.UNKNOWN
    assert streams["orders"].foreign_keys == [
        {"columns": ["customer_id"], "ref_table": "customers", "ref_columns": ["id"]}
    ]
    lines = streams["order_lines"]
    assert [f.name for f in lines.fields if f.primary_key] == ["order_id", "line_no"]
    # `REFERENCES orders` without columns points at the parent's primary key.
    assert lines.foreign_keys == [
        {"columns": ["order_id"], "ref_table": "orders", "ref_columns": ["id"]}
    ]
    view = streams["active_customers"]
    assert view.kind == "view" and [f.name for f in view.fields] == ["id", "name"]


# --- read ------------------------------------------------------------------------------------


async def test_read_full_refresh_in_batches(shop, ctx) -> None:
    frames = [
        f async for f in connector.read(shop, ReadRequest(stream="customers", batch_size=2), ctx)
    ]
    assert [f.height for f in frames] == [2, 1]
    frame = pl.concat(frames)
    assert frame["name"].to_list() == ["Ada", "Bob", "Cy"]
    assert frame["balance"].to_list() == [10.5, None, 3.0]
    assert frame["active"].to_list() == [True, False, True]
    assert frame["updated_at"].to_list() == [
        dt.datetime(2024, 1, 1, 10),
        dt.datetime(2024, 1, 2, 10, 0, 0, 250000),
        dt.datetime(2024, 1, 3, 10),
    ]
    orders = await read_all(shop, ctx, stream="orders")
    assert orders["placed_on"].to_list() == [dt.date(2024, 2, 1), None]
    assert (await read_all(shop, ctx, stream="orders", limit=1)).height == 1
    view = await read_all(shop, ctx, stream="active_customers")
    assert sorted(view["name"].to_list()) == ["Ada", "Cy"]


async def test_read_incremental_by_datetime_and_by_id(shop, ctx) -> None:
    first = await read_all(
        shop, ctx, stream="customers", sync_mode="incremental", cursor_field="updated_at"
    )
    # The caller keeps the max cursor as state; mixed 'T'/' ' layouts still compare right.
    state = {"cursor": first["updated_at"][1].isoformat()}
    later = await read_all(
        shop,
        ctx,
        stream="customers",
        sync_mode="incremental",
        cursor_field="updated_at",
        state=state,
    )
    assert later["name"].to_list() == ["Cy"]
    by_id = await read_all(
        shop, ctx, stream="orders", sync_mode="incremental", cursor_field="id", state={"cursor": 1}
    )
    assert by_id["id"].to_list() == [2]


async def test_read_unknown_stream_is_not_found(shop, ctx) -> None:
    with pytest.raises(ConnectorError) as missing:
        await read_all(shop, ctx, stream="nope")
    assert missing.value.category == "not_found"


# --- write -----------------------------------------------------------------------------------


@pytest.fixture
def people_db(ctx: ConnectorContext) -> dict[str, Any]:
    with sqlite3.connect(ctx.data_dir / "people.db") as conn:
        conn.executescript(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL);"
            "INSERT INTO people VALUES (1, 'Ada', 1.5), (2, 'Bob', 2.0);"
        )
    conn.close()
    return {"path": "people.db"}


def people(*records: tuple[int, str | None, float]) -> pl.DataFrame:
    return pl.DataFrame(
        records, schema={"id": pl.Int64, "name": pl.String, "score": pl.Float64}, orient="row"
    )


def people_rows(ctx: ConnectorContext) -> list[tuple[Any, ...]]:
    return query(ctx, "SELECT id, name, score FROM people ORDER BY id", "people.db")


async def test_write_append(people_db, ctx) -> None:
    written = await write(
        people_db, ctx, "people", "append", people((3, "Cy", 3.25)), people((4, "", 0.0))
    )
    assert written == 2
    assert people_rows(ctx) == [(1, "Ada", 1.5), (2, "Bob", 2.0), (3, "Cy", 3.25), (4, "", 0.0)]


async def test_write_replace(people_db, ctx) -> None:
    await write(people_db, ctx, "people", "replace", people((7, None, 7.0)))
    assert people_rows(ctx) == [(7, None, 7.0)]


async def test_write_upsert_updates_and_inserts_last_value_wins(people_db, ctx) -> None:
    await write(
        people_db,
        ctx,
        "people",
        "upsert",
        people((2, "Bobby", 2.5), (3, "Cy", 3.0)),
        people((3, "Cyd", 3.5)),
    )
    assert people_rows(ctx) == [(1, "Ada", 1.5), (2, "Bobby", 2.5), (3, "Cyd", 3.5)]


async def test_aborted_writer_leaves_destination_unchanged(people_db, ctx) -> None:
    for mode in ("append", "replace", "upsert"):
        writer = await connector.open_writer(
            people_db, WriteRequest(stream="people", mode=mode), ctx
        )
        await writer.write_batch(people((1, "Changed", 9.0), (5, "New", 5.0)))
        await writer.abort()
    assert people_rows(ctx) == [(1, "Ada", 1.5), (2, "Bob", 2.0)]
    assert query(ctx, "SELECT name FROM sqlite_master", "people.db") == [("people",)]


async def test_failed_commit_leaves_destination_unchanged(people_db, ctx) -> None:
    writer = await connector.open_writer(people_db, WriteRequest(stream="people"), ctx)
    await writer.write_batch(people((9, "Nine", 9.0), (1, "Dup", 1.0)))
    with pytest.raises(sqlite3.IntegrityError):
        await writer.commit()
    assert people_rows(ctx) == [(1, "Ada", 1.5), (2, "Bob", 2.0)]


async def test_write_creates_file_and_table_and_round_trips_types(ctx) -> None:
    frame = pl.DataFrame(
        {
            "id": [1, 2],
            "label": ["a,'quoted'\nline", None],
            "ratio": [0.5, None],
            "flag": [True, None],
            "day": [dt.date(2024, 5, 1), None],
            "local": [dt.datetime(2024, 5, 1, 12, 30, 1, 250000), None],
            "clock": [dt.time(8, 15, 30), None],
            "blob": [b"\x00\xffdata", None],
            "items": [[1, 2], None],
        }
    )
    config = {"path": "new/dir/fresh.db"}
    await write(config, ctx, "fresh", "append", frame, primary_key=["id"])
    discovered = {s.name: s for s in await connector.discover(config, ctx)}["fresh"]
    assert [f.name for f in discovered.fields if f.primary_key] == ["id"]
    back = await read_all(config, ctx, stream="fresh")
    expected = frame.with_columns(pl.Series("items", ["[1,2]", None]))
    assert back.to_dicts() == expected.to_dicts()


def test_data_dir_escape_via_symlink_is_refused(ctx: ConnectorContext, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (ctx.data_dir / "link").symlink_to(outside)
    from engine.connectors.sqlite import _database_path

    with pytest.raises(ConnectorError):
        _database_path("link/x.db", ctx)
    assert _database_path("sub/x.db", ctx) == (ctx.data_dir / "sub" / "x.db").resolve()


def test_relative_path_is_inside_data_dir(ctx: ConnectorContext) -> None:
    from engine.connectors.sqlite import _database_path

    assert _database_path("a.db", ctx).parent == Path(ctx.data_dir).resolve()


async def test_write_of_some_columns_leaves_defaults_to_the_table(ctx) -> None:
    with sqlite3.connect(ctx.data_dir / "events.db") as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, seen INT DEFAULT 1)")
    conn.close()
    await write({"path": "events.db"}, ctx, "events", "append", pl.DataFrame({"kind": ["a"]}))
    assert query(ctx, "SELECT id, kind, seen FROM events", "events.db") == [(1, "a", 1)]


@pytest.mark.parametrize(
    ("declared", "logical"),
    [
        ("INT", LogicalType.INTEGER),
        ("UNSIGNED BIG INT", LogicalType.INTEGER),
        ("NVARCHAR(100)", LogicalType.STRING),
        ("CLOB", LogicalType.STRING),
        ("DOUBLE PRECISION", LogicalType.NUMBER),
        ("FLOAT", LogicalType.NUMBER),
        ("NUMERIC(10, 5)", LogicalType.DECIMAL),
        ("BOOLEAN", LogicalType.BOOLEAN),
        ("TIMESTAMP", LogicalType.DATETIME),
        ("DATE", LogicalType.DATE),
        ("BLOB", LogicalType.BINARY),
        ("JSON", LogicalType.JSON),
        ("", LogicalType.UNKNOWN),
    ],
)
async def test_declared_types_map_like_sqlite_affinity(ctx, declared: str, logical) -> None:
    with sqlite3.connect(ctx.data_dir / "types.db") as conn:
        conn.execute(f"CREATE TABLE t (c {declared})")
    conn.close()
    (table,) = await connector.discover({"path": "types.db"}, ctx)
    assert table.fields[0].type == logical
    assert table.fields[0].native_type == declared
