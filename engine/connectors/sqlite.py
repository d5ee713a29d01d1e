"""SQLite source and destination on aiosqlite (sqlite3 in a worker thread).

The database file must live under the platform's data directory unless the platform allows
any path (`ctx.extra["allow_any_sqlite_path"]`). Discovery is two queries over sqlite_master
joined with the table-valued pragmas. Writes stage into a TEMP table (private to the
connection, gone if the process dies) and publish in one IMMEDIATE transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import polars as pl

from engine.connectors.base import (
    CheckCategory,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorSpec,
    ReadRequest,
    Writer,
    WriteRequest,
)
from engine.connectors.errors import ConnectorError
from engine.connectors.sql_common import (
    JSON_SCHEMA_DIALECT,
    SQLITE,
    ColumnPlan,
    SelectQuery,
    StagedSqlWriter,
    build_select,
    check_failure,
    column_list,
    create_table_sql,
    cursor_param_text,
    empty_frame,
    frame_from_rows,
    frame_to_rows,
    gc_paused,
    grouped_ui_schema,
    is_staging_table,
    make_field,
    placeholders,
    polars_dtype_for,
    quote_ident,
    quote_qualified,
    run_check,
    staging_table_name,
    stream_not_found,
    text_to_temporal,
    trusted_model,
    validate_read_request,
    validated_config,
)
from engine.schema import Field, LogicalType, StreamSchema

ALLOW_ANY_PATH = "allow_any_sqlite_path"
# Files no connector may open, e.g. the platform's own SQLite database under DATA_DIR.
FORBIDDEN_PATHS = "forbidden_sqlite_paths"

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": JSON_SCHEMA_DIALECT,
    "type": "object",
    "title": "SQLite database",
    "required": ["path"],
    "properties": {
        "path": {
            "type": "string",
            "title": "Database file",
            "description": "Path of the SQLite file, relative to the platform's data "
            "directory. A destination creates the file when it does not exist.",
            "minLength": 1,
            "examples": ["sales.db", "imports/2024.sqlite"],
        },
        "busy_timeout": {
            "type": "number",
            "title": "Busy timeout (s)",
            "description": "How long to wait for another writer to release the database.",
            "exclusiveMinimum": 0,
            "maximum": 300,
            "default": 10,
            "examples": [10],
        },
    },
}

UI_SCHEMA = grouped_ui_schema(
    {"File": ["path"], "Advanced": ["busy_timeout"]},
    {
        "path": {"ui:autofocus": True, "ui:placeholder": "sales.db"},
        "busy_timeout": {"ui:widget": "updown"},
    },
)

DOCS = """Reads tables and views of a SQLite file in the data directory and writes tables
into it. Dates are stored as ISO-8601 text (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC for zoned
values); incremental reads compare them as instants, so either separator works."""


@dataclass(frozen=True)
class SQLiteSettings:
    path: Path
    busy_timeout: float


def _settings(config: dict[str, Any], ctx: ConnectorContext) -> SQLiteSettings:
    config = validated_config(config, CONFIG_SCHEMA)
    path = _database_path(config["path"], ctx)
    return SQLiteSettings(path, float(config["busy_timeout"]))


def _database_path(configured: str, ctx: ConnectorContext) -> Path:
    """The file to open, refusing anything outside the data directory unless allowed."""
    candidate = Path(configured)
    if not candidate.is_absolute():
        candidate = ctx.data_dir / candidate
    resolved = candidate.resolve()  # follows symlinks and '..', so escapes are caught
    if resolved in {Path(p).resolve() for p in ctx.extra.get(FORBIDDEN_PATHS, ())}:
        raise ConnectorError(
            CheckCategory.PERMISSION, "That file is the platform's own database.", "/path"
        )
    if ctx.extra.get(ALLOW_ANY_PATH) or resolved.is_relative_to(ctx.data_dir.resolve()):
        return resolved
    raise ConnectorError(
        CheckCategory.PERMISSION,
        f"{configured!r} is outside the data directory; use a path relative to it.",
        "/path",
    )


# ---------------------------------------------------------------------------------------------
# Connecting
# ---------------------------------------------------------------------------------------------


def _categorize(exc: BaseException) -> ConnectorError:
    if isinstance(exc, ConnectorError):
        return exc
    message = str(exc)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError) or "locked" in message:
        return ConnectorError(
            CheckCategory.TIMEOUT,
            "The database stayed locked by another writer; retry later or raise the busy timeout.",
            "/busy_timeout",
        )
    if isinstance(exc, PermissionError) or "readonly" in message or "permission" in message:
        return ConnectorError(
            CheckCategory.PERMISSION, f"The file cannot be accessed: {message}", "/path"
        )
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in message:
        return ConnectorError(
            CheckCategory.INVALID_CONFIG,
            "The file is not a SQLite database (or it is encrypted). Check the path.",
            "/path",
        )
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in message:
        return ConnectorError(
            CheckCategory.NOT_FOUND, f"Cannot open the database: {message}", "/path"
        )
    return ConnectorError(CheckCategory.CONNECT, f"SQLite failed: {message}", "/path")


async def _connect(settings: SQLiteSettings, *, create: bool = False) -> aiosqlite.Connection:
    """Writers open read-write and create the file; everything else opens read-only."""
    if not create and not settings.path.is_file():
        raise ConnectorError(
            CheckCategory.NOT_FOUND,
            f"No database file at {settings.path.name!r} in the data directory. Check the path.",
            "/path",
        )
    if create:
        settings.path.parent.mkdir(parents=True, exist_ok=True)
    mode = "rwc" if create else "ro"
    try:
        conn = await aiosqlite.connect(
            f"{settings.path.as_uri()}?mode={mode}",
            uri=True,
            timeout=settings.busy_timeout,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
        )
    except Exception as exc:
        raise _categorize(exc) from exc
    try:
        # Reading the schema makes SQLite read the header: a non-database fails here.
        await conn.execute("SELECT count(*) FROM sqlite_master")
    except Exception as exc:
        await conn.close()
        raise _categorize(exc) from exc
    return conn


async def _fetch(conn: aiosqlite.Connection, query: str, params: Sequence[Any] = ()) -> list:
    async with conn.execute(query, params) as cursor:
        return list(await cursor.fetchall())


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------

# The table-valued pragmas give every table's columns and foreign keys in one query each.
COLUMNS_SQL = """
SELECT m.name, m.type, p.name, p.type, p."notnull", p.pk
FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p
WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
  AND (?1 IS NULL OR m.name = ?1)
ORDER BY m.name, p.cid
"""

FOREIGN_KEYS_SQL = """
SELECT m.name, f.id, f."table", f."from", f."to"
FROM sqlite_master AS m JOIN pragma_foreign_key_list(m.name) AS f
WHERE m.type = 'table' AND (?1 IS NULL OR m.name = ?1)
ORDER BY m.name, f.id, f.seq
"""


async def _load_catalog(conn: aiosqlite.Connection, only: str | None = None) -> list[StreamSchema]:
    columns = await _fetch(conn, COLUMNS_SQL, (only,))
    foreign_key_rows = await _fetch(conn, FOREIGN_KEYS_SQL, (only,)) if only is None else []
    with gc_paused():
        streams = _assemble_streams(columns)
        _attach_foreign_keys(streams, foreign_key_rows)
    return streams


def _assemble_streams(rows: Sequence[tuple[Any, ...]]) -> list[StreamSchema]:
    streams: list[StreamSchema] = []
    fields: list[Field] = []
    current: str | None = None
    for table, kind, column, declared, not_null, pk_position in rows:
        if is_staging_table(table):
            continue
        if table != current:
            current, fields = table, []
            streams.append(
                trusted_model(
                    StreamSchema,
                    name=table,
                    fields=fields,
                    row_estimate=None,  # SQLite keeps no row count short of counting
                    foreign_keys=[],
                    kind=kind,
                )
            )
        # A column without a declared type has no affinity: it holds whatever was stored.
        fields.append(make_field(column, declared or "", not not_null, pk_position > 0, SQLITE))
    return streams


def _attach_foreign_keys(streams: list[StreamSchema], rows: Sequence[tuple[Any, ...]]) -> None:
    by_name = {stream.name: stream for stream in streams}
    keys: dict[tuple[str, int], dict[str, Any]] = {}
    for table, fk_id, ref_table, column, ref_column in rows:
        fk = keys.setdefault(
            (table, fk_id), {"columns": [], "ref_table": ref_table, "ref_columns": []}
        )
        fk["columns"].append(column)
        fk["ref_columns"].append(ref_column)
    for (table, _), fk in keys.items():
        if None in fk["ref_columns"]:  # `REFERENCES parent` alone means parent's primary key
            parent = by_name.get(fk["ref_table"])
            fk["ref_columns"] = [f.name for f in parent.fields if f.primary_key] if parent else []
        if table in by_name:
            by_name[table].foreign_keys.append(fk)


async def _stream_schema(conn: aiosqlite.Connection, stream: str) -> StreamSchema:
    streams = await _load_catalog(conn, stream)
    if not streams:
        raise stream_not_found(stream, "the database file")
    return streams[0]


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

_TEXT_TEMPORAL = {
    LogicalType.DATE: pl.Date(),
    LogicalType.DATETIME: pl.Datetime("us"),
    LogicalType.TIME: pl.Time(),
}


def _column_plan(field: Field) -> ColumnPlan:
    name = quote_ident(field.name, SQLITE)
    if field.type in _TEXT_TEMPORAL:
        return ColumnPlan(
            field.name, name, pl.String(), text_to_temporal(_TEXT_TEMPORAL[field.type])
        )
    if field.type in (LogicalType.DECIMAL, LogicalType.NUMBER):
        return ColumnPlan(field.name, name, pl.Float64())  # stored as REAL either way
    if field.type == LogicalType.UNKNOWN:
        return ColumnPlan(field.name, name, None)  # no affinity: let the values decide
    return ColumnPlan(field.name, name, polars_dtype_for(field.type, field.native_type or ""))


def _cursor_sql(field: Field) -> tuple[str, str]:
    """Column and placeholder to compare; dates compare as instants, whatever their layout."""
    name = quote_ident(field.name, SQLITE)
    if field.type in (LogicalType.DATE, LogicalType.DATETIME):
        return f"julianday({name})", "julianday(?)"
    return name, "?"


def _read_query(
    stream: StreamSchema, request: ReadRequest, cursor: str | None
) -> tuple[list[ColumnPlan], SelectQuery]:
    plans = [_column_plan(f) for f in stream.fields]
    cursor_sql = placeholder = None
    if cursor is not None:
        cursor_sql, placeholder = _cursor_sql(next(f for f in stream.fields if f.name == cursor))
    state_cursor = (request.state or {}).get("cursor")
    if state_cursor is not None and not isinstance(state_cursor, int | float):
        state_cursor = cursor_param_text(state_cursor)
    query = build_select(
        quote_ident(stream.name, SQLITE),
        plans,
        cursor_sql=cursor_sql,
        cursor_placeholder=placeholder,
        cursor_value=state_cursor,
        limit=request.limit,
    )
    return plans, query


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


class SQLiteWriter(StagedSqlWriter):
    """Batches go into a TEMP table in their own short transactions (the temp database is
    private, so the main file stays unlocked); commit publishes under BEGIN IMMEDIATE."""

    def __init__(
        self, conn: aiosqlite.Connection, request: WriteRequest, destination: StreamSchema | None
    ) -> None:
        super().__init__(request, destination)
        self.conn = conn
        self.table_sql = quote_qualified(SQLITE, "main", request.stream)
        self.staging_sql = quote_qualified(
            SQLITE, "temp", staging_table_name(request.stream, SQLITE)
        )

    async def create_staging(self, schema: pl.Schema) -> None:
        if self.destination is not None:
            ddl = f"CREATE TABLE {self.staging_sql} AS SELECT * FROM {self.table_sql} WHERE 0"
        else:
            ddl = create_table_sql(self.staging_sql, schema, SQLITE)
        await self.conn.execute(ddl)

    async def load_batch(self, frame: pl.DataFrame) -> None:
        insert = (
            f"INSERT INTO {self.staging_sql} ({column_list(frame.columns, SQLITE)}) "
            f"VALUES {placeholders(frame.width, '?')}"
        )
        await self.conn.execute("BEGIN")
        try:
            await self.conn.executemany(insert, frame_to_rows(frame, SQLITE))
            await self.conn.execute("COMMIT")
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise

    async def publish(self, *, staged: bool) -> None:
        if self.destination is None and not staged:
            return  # nothing was written and there is nothing to replace
        await self.conn.execute("BEGIN IMMEDIATE")
        try:
            await self._publish_statements()
            await self.conn.execute("COMMIT")
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise

    async def _publish_statements(self) -> None:
        if self.destination is None:
            assert self.staged_schema is not None
            await self.conn.execute(
                create_table_sql(
                    self.table_sql, self.staged_schema, SQLITE, primary_key=self.new_table_key
                )
            )
        elif self.request.mode == "replace":
            await self.conn.execute(f"DELETE FROM {self.table_sql}")
        if self.rows_staged:
            await self.conn.execute(self._insert_sql())

    def _insert_sql(self) -> str:
        columns = column_list(self.columns_loaded, SQLITE)
        # WHERE true keeps SQLite's parser from reading ON CONFLICT as a join constraint;
        # rowid order lets the last staged row of a key win.
        select = f"SELECT {columns} FROM {self.staging_sql} WHERE true ORDER BY rowid"
        statement = f"INSERT INTO {self.table_sql} ({columns}) {select}"
        if self.request.mode != "upsert":
            return statement
        updates = [quote_ident(c, SQLITE) for c in self.columns_loaded if c not in self.key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updates)
            if updates
            else "DO NOTHING"
        )
        return f"{statement} ON CONFLICT ({column_list(self.key, SQLITE)}) {action}"

    async def drop_staging(self) -> None:
        await self.conn.execute(f"DROP TABLE IF EXISTS {self.staging_sql}")

    async def close(self) -> None:
        await self.conn.close()


# ---------------------------------------------------------------------------------------------
# The connector
# ---------------------------------------------------------------------------------------------


class SQLiteConnector(Connector):
    type = "sqlite"

    def spec(self) -> ConnectorSpec:
        return ConnectorSpec(
            type=self.type,
            title="SQLite",
            category="database",
            direction="both",
            config_schema=CONFIG_SCHEMA,
            ui_schema=UI_SCHEMA,
            docs=DOCS,
            secret_fields=[],
        )

    async def check(self, config: dict[str, Any], ctx: ConnectorContext) -> CheckResult:
        try:
            settings = _settings(config, ctx)
        except ConnectorError as exc:
            return check_failure(exc)

        async def probe() -> None:
            conn = await _connect(settings)
            await conn.close()

        return await run_check(probe, _categorize, settings.busy_timeout)

    async def discover(self, config: dict[str, Any], ctx: ConnectorContext) -> list[StreamSchema]:
        conn = await _connect(_settings(config, ctx))
        try:
            return await _load_catalog(conn)
        finally:
            await conn.close()

    async def read(  # type: ignore[override]
        self, config: dict[str, Any], request: ReadRequest, ctx: ConnectorContext
    ) -> AsyncIterator[pl.DataFrame]:
        conn = await _connect(_settings(config, ctx))
        try:
            stream = await _stream_schema(conn, request.stream)
            cursor = validate_read_request(
                stream.fields, request.sync_mode, request.cursor_field, request.stream
            )
            plans, query = _read_query(stream, request, cursor)
            # One read transaction: a consistent snapshot across all batches.
            await conn.execute("BEGIN")
            async with conn.execute(query.sql, query.params) as db_cursor:
                yielded = False
                while rows := await db_cursor.fetchmany(request.batch_size):
                    yielded = True
                    yield frame_from_rows(rows, plans)
            if not yielded:
                yield empty_frame(plans)  # the columns, even when no row qualifies
        finally:
            await conn.close()

    async def open_writer(
        self, config: dict[str, Any], request: WriteRequest, ctx: ConnectorContext
    ) -> Writer:
        conn = await _connect(_settings(config, ctx), create=True)
        try:
            streams = await _load_catalog(conn, request.stream)
            destination = streams[0] if streams else None
            if destination is not None and destination.kind == "view":
                raise ConnectorError(
                    CheckCategory.INVALID_CONFIG,
                    f"{request.stream!r} is a view; choose a table as destination",
                )
            return SQLiteWriter(conn, request, destination)
        except BaseException:
            await conn.close()
            raise
