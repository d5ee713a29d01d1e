"""MySQL / MariaDB source and destination on asyncmy.

Discovery reads information_schema: two queries per database (a third on MariaDB, to spot
JSON columns). Reads stream through an unbuffered cursor into Polars frames. Writes go in
multi-row INSERT batches into a staging table published atomically: RENAME TABLE for replace
and for new tables, one INSERT … SELECT (… ON DUPLICATE KEY UPDATE) for append and upsert.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncmy
import polars as pl
from asyncmy.connection import Connection
from asyncmy.cursors import SSCursor
from asyncmy.errors import MySQLError

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
    MYSQL,
    NETWORK_WIDGETS,
    ColumnPlan,
    NetworkSettings,
    SelectQuery,
    StagedSqlWriter,
    build_select,
    categorize_network_error,
    check_failure,
    client_ssl_context,
    column_list,
    create_table_sql,
    cursor_param_text,
    duration_to_time,
    empty_frame,
    frame_from_rows,
    frame_to_rows,
    gc_paused,
    grouped_ui_schema,
    is_staging_table,
    make_field,
    network_properties,
    object_schema,
    placeholders,
    polars_dtype_for,
    quote_ident,
    run_check,
    staging_table_name,
    stream_not_found,
    tls_properties,
    trusted_model,
    validate_read_request,
    validated_config,
)
from engine.schema import Field, LogicalType, StreamSchema

TLS_FIELD = "tls_mode"
TLS_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"]

CONFIG_SCHEMA = object_schema(
    "MySQL / MariaDB connection",
    {
        **network_properties(default_port=3306, default_user="root"),
        **tls_properties(TLS_FIELD, TLS_MODES, default="prefer"),
    },
    required=["host", "database"],
)

UI_SCHEMA = grouped_ui_schema(
    {
        "Connection": ["host", "port", "database"],
        "Authentication": ["user", "password"],
        "Security": [TLS_FIELD, "tls_ca_cert"],
        "Advanced": ["connect_timeout"],
    },
    NETWORK_WIDGETS,
)

DOCS = """Reads tables and views of one MySQL or MariaDB database and writes tables into it.
Incremental reads need a cursor column that only grows (`updated_at`, an auto-increment id).
Writes are staged and published atomically; replace swaps in a new table with RENAME TABLE,
so the table's triggers and grants must be recreated by its owner. TIMESTAMP values are read
and written in UTC."""

# MySQL error numbers a connection test can meet.
ER_ACCESS_DENIED = 1045
ER_DB_ACCESS_DENIED = 1044
ER_TABLE_ACCESS_DENIED = (1142, 1143)
ER_BAD_DB = 1049
ER_HOST_NOT_PRIVILEGED = 1130
CR_SSL_CONNECTION_ERROR = 2026


def _settings(config: dict[str, Any]) -> NetworkSettings:
    return NetworkSettings.from_config(validated_config(config, CONFIG_SCHEMA), TLS_FIELD)


# ---------------------------------------------------------------------------------------------
# Connecting
# ---------------------------------------------------------------------------------------------


def _categorize(exc: BaseException, net: NetworkSettings) -> ConnectorError:
    if isinstance(exc, ConnectorError):  # e.g. the network guard refused the address
        return exc
    code = exc.args[0] if isinstance(exc, MySQLError) and exc.args else None
    message = exc.args[1] if isinstance(exc, MySQLError) and len(exc.args) > 1 else str(exc)
    if code == ER_ACCESS_DENIED:
        return ConnectorError(
            CheckCategory.AUTH,
            f"Access denied for user {net.user!r}: check the user name and password.",
            "/password",
        )
    if code == ER_BAD_DB:
        return ConnectorError(
            CheckCategory.NOT_FOUND,
            f"Database {net.database!r} does not exist on {net.host}. Check its name.",
            "/database",
        )
    if code in (ER_DB_ACCESS_DENIED, *ER_TABLE_ACCESS_DENIED):
        return ConnectorError(
            CheckCategory.PERMISSION,
            f"{message}. Ask the database owner to GRANT the needed privileges.",
            "/user",
        )
    if code == ER_HOST_NOT_PRIVILEGED:
        return ConnectorError(
            CheckCategory.PERMISSION,
            f"{message}. The server does not accept this platform's address for that user.",
            "/host",
        )
    if code == CR_SSL_CONNECTION_ERROR or "SSL" in message:
        return ConnectorError(
            CheckCategory.TLS,
            f"TLS with {net.host}:{net.port} failed: {message}. Choose a TLS mode the server "
            "supports, or check the CA certificate.",
            f"/{TLS_FIELD}",
        )
    return categorize_network_error(exc, net.host, net.port, net.connect_timeout, TLS_FIELD)


async def _open(net: NetworkSettings, address: str, tls: ssl.SSLContext | None) -> Connection:
    try:
        return await asyncio.wait_for(
            asyncmy.connect(
                host=address,
                port=net.port,
                user=net.user,
                password=net.password,
                database=net.database,
                ssl=tls,
                connect_timeout=max(1, math.ceil(net.connect_timeout)),
                autocommit=True,
                charset="utf8mb4",
                # Session in UTC, so TIMESTAMP columns mean the same on every server.
                init_command="SET time_zone = '+00:00'",
            ),
            net.connect_timeout,
        )
    except Exception as exc:
        raise _categorize(exc, net) from exc


async def _connect(net: NetworkSettings, ctx: ConnectorContext) -> Connection:
    """One connection per operation; the caller closes it. Errors come out categorised."""
    try:
        address = await ctx.resolve(net.host, net.port)
    except Exception as exc:
        raise _categorize(exc, net) from exc
    if net.tls_mode == "disable":
        return await _open(net, address, None)
    if net.tls_mode != "prefer":
        return await _open(
            net, address, client_ssl_context(net.tls_mode, net.tls_ca_cert, net.host)
        )
    try:
        return await _open(net, address, client_ssl_context("require", None, net.host))
    except ConnectorError as exc:
        if exc.category != CheckCategory.TLS:
            raise
    # The server does not speak TLS: "prefer" settles for plain TCP, like libpq's mode.
    return await _open(net, address, None)


async def _close(conn: Connection) -> None:
    try:
        await asyncio.wait_for(conn.ensure_closed(), 5)
    except Exception:
        conn.close()  # drop the socket without the polite QUIT


async def _fetch(conn: Connection, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cursor:
        await cursor.execute(query, params or None)
        return list(await cursor.fetchall())


async def _execute(conn: Connection, query: str, params: Sequence[Any] = ()) -> None:
    async with conn.cursor() as cursor:
        await cursor.execute(query, params or None)


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------

# `%s` narrows to one table (reads and writes); both queries cover the whole database when the
# filter is dropped.
COLUMNS_SQL = """
SELECT t.TABLE_NAME, t.TABLE_TYPE, t.TABLE_ROWS, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE
FROM information_schema.TABLES t
JOIN information_schema.COLUMNS c
  ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME
WHERE t.TABLE_SCHEMA = DATABASE() {table_filter}
ORDER BY t.TABLE_NAME, c.ORDINAL_POSITION
"""

KEYS_SQL = """
SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME,
       REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = DATABASE() {table_filter}
  AND (CONSTRAINT_NAME = 'PRIMARY' OR REFERENCED_TABLE_NAME IS NOT NULL)
ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION
"""


# MariaDB's JSON is LONGTEXT with a json_valid() check; the check is how to recognise it.
MARIADB_JSON_COLUMNS_SQL = """
SELECT TABLE_NAME, CONSTRAINT_NAME
FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = DATABASE() {table_filter}
  AND LEVEL = 'Column' AND CHECK_CLAUSE LIKE 'json\\_valid(%%'
"""


def _catalog_query(
    template: str, table_column: str, only: str | None
) -> tuple[str, tuple[str, ...]]:
    table_filter = f"AND {table_column} = %s" if only else ""
    return template.format(table_filter=table_filter), ((only,) if only else ())


async def _load_catalog(
    conn: Connection, database: str, only: str | None = None
) -> list[StreamSchema]:
    columns = await _fetch(conn, *_catalog_query(COLUMNS_SQL, "t.TABLE_NAME", only))
    keys = await _fetch(conn, *_catalog_query(KEYS_SQL, "TABLE_NAME", only))
    primary_keys, foreign_keys = _split_keys(keys, database)
    json_columns: set[tuple[str, str]] = set()
    if "mariadb" in conn.get_server_info().lower():
        query = _catalog_query(MARIADB_JSON_COLUMNS_SQL, "TABLE_NAME", only)
        json_columns = {(table, column) for table, column in await _fetch(conn, *query)}
    with gc_paused():
        return _assemble_streams(columns, primary_keys, foreign_keys, json_columns)


def _split_keys(
    rows: Sequence[tuple[Any, ...]], database: str
) -> tuple[dict[str, set[str]], dict[str, list[dict[str, Any]]]]:
    primary: dict[str, set[str]] = {}
    foreign: dict[tuple[str, str], dict[str, Any]] = {}
    for table, constraint, column, ref_schema, ref_table, ref_column in rows:
        if constraint == "PRIMARY":
            primary.setdefault(table, set()).add(column)
            continue
        ref_name = ref_table if ref_schema == database else f"{ref_schema}.{ref_table}"
        fk = foreign.setdefault(
            (table, constraint), {"columns": [], "ref_table": ref_name, "ref_columns": []}
        )
        fk["columns"].append(column)
        fk["ref_columns"].append(ref_column)
    by_table: dict[str, list[dict[str, Any]]] = {}
    for (table, _), fk in foreign.items():
        by_table.setdefault(table, []).append(fk)
    return primary, by_table


def _assemble_streams(
    rows: Sequence[tuple[Any, ...]],
    primary_keys: dict[str, set[str]],
    foreign_keys: dict[str, list[dict[str, Any]]],
    json_columns: set[tuple[str, str]],
) -> list[StreamSchema]:
    streams: list[StreamSchema] = []
    fields: list[Field] = []
    current: str | None = None
    for table, table_type, table_rows, column, native, nullable in rows:
        if is_staging_table(table):
            continue
        if table != current:
            current, fields = table, []
            is_view = table_type == "VIEW"
            streams.append(
                trusted_model(
                    StreamSchema,
                    name=table,
                    fields=fields,
                    row_estimate=None if is_view or table_rows is None else int(table_rows),
                    foreign_keys=foreign_keys.get(table, []),
                    kind="view" if is_view else "table",
                )
            )
        is_key = column in primary_keys.get(table, ())
        if (table, column) in json_columns:
            native = "json"
        fields.append(make_field(column, native, nullable == "YES", is_key, MYSQL))
    return streams


async def _stream_schema(conn: Connection, database: str, stream: str) -> StreamSchema:
    streams = await _load_catalog(conn, database, stream)
    if not streams:
        raise stream_not_found(stream, f"database {database!r}")
    return streams[0]


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _column_plan(field: Field) -> ColumnPlan:
    name = quote_ident(field.name, MYSQL)
    native = (field.native_type or "").lower()
    dtype = polars_dtype_for(field.type, native)
    if field.type == LogicalType.BOOLEAN and native.startswith("bit"):
        return ColumnPlan(field.name, f"CAST({name} AS UNSIGNED) AS {name}", dtype)
    if field.type == LogicalType.TIME:
        # TIME is an interval in MySQL and arrives as timedelta.
        return ColumnPlan(field.name, name, pl.Duration("us"), duration_to_time)
    if field.type == LogicalType.UNKNOWN:
        return ColumnPlan(field.name, f"CAST({name} AS CHAR) AS {name}", dtype)
    return ColumnPlan(field.name, name, dtype)


def _read_query(
    stream: StreamSchema, request: ReadRequest, cursor: str | None
) -> tuple[list[ColumnPlan], SelectQuery]:
    plans = [_column_plan(f) for f in stream.fields]
    state_cursor = (request.state or {}).get("cursor")
    query = build_select(
        quote_ident(stream.name, MYSQL),
        plans,
        cursor_sql=quote_ident(cursor, MYSQL) if cursor else None,
        cursor_placeholder="%s",
        # MySQL compares text with numbers and dates by converting it: send the state as text.
        cursor_value=None if state_cursor is None else cursor_param_text(state_cursor),
        limit=request.limit,
    )
    return plans, query


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


class MySQLWriter(StagedSqlWriter):
    """Replace and brand-new tables stage in a real table published with RENAME TABLE (atomic,
    even across two renames); append and upsert stage in a TEMPORARY table (the server drops it
    if this process dies) published by one INSERT … SELECT."""

    def __init__(
        self, conn: Connection, request: WriteRequest, destination: StreamSchema | None
    ) -> None:
        super().__init__(request, destination)
        self.conn = conn
        self.table_sql = quote_ident(request.stream, MYSQL)
        self.staging_sql = quote_ident(staging_table_name(request.stream, MYSQL), MYSQL)
        self.publish_by_rename = request.mode == "replace" or destination is None

    async def create_staging(self, schema: pl.Schema) -> None:
        if self.destination is not None:
            await self._create_staging_like_destination()
        else:
            ddl = create_table_sql(self.staging_sql, schema, MYSQL, primary_key=self.new_table_key)
            await _execute(self.conn, ddl)

    async def _create_staging_like_destination(self) -> None:
        temporary = "" if self.publish_by_rename else "TEMPORARY "
        await _execute(
            self.conn, f"CREATE {temporary}TABLE {self.staging_sql} LIKE {self.table_sql}"
        )

    async def load_batch(self, frame: pl.DataFrame) -> None:
        insert = (
            f"INSERT INTO {self.staging_sql} ({column_list(frame.columns, MYSQL)}) "
            f"VALUES {placeholders(frame.width, '%s')}"
        )
        if self.request.mode == "upsert":  # a key staged twice keeps its last row
            insert += " " + self._on_duplicate_key(frame.columns)
        async with self.conn.cursor() as cursor:
            # asyncmy folds executemany of a plain INSERT into multi-row statements.
            await cursor.executemany(insert, frame_to_rows(frame, MYSQL))

    def _on_duplicate_key(self, columns: Sequence[str]) -> str:
        updates = [quote_ident(c, MYSQL) for c in columns if c not in self.key] or [
            quote_ident(self.key[0], MYSQL)
        ]
        return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in updates)

    async def publish(self, *, staged: bool) -> None:
        if self.destination is None:
            if staged:
                await _execute(self.conn, f"RENAME TABLE {self.staging_sql} TO {self.table_sql}")
            return
        if self.publish_by_rename:
            await self._swap_in_staging(staged)
        elif self.rows_staged:
            await self._insert_from_staging()

    async def _swap_in_staging(self, staged: bool) -> None:
        if not staged:  # replace with no rows at all: swap in an empty copy
            await self._create_staging_like_destination()
        retired = quote_ident(staging_table_name(self.request.stream, MYSQL), MYSQL)
        await _execute(
            self.conn,
            f"RENAME TABLE {self.table_sql} TO {retired}, {self.staging_sql} TO {self.table_sql}",
        )
        await _execute(self.conn, f"DROP TABLE {retired}")

    async def _insert_from_staging(self) -> None:
        columns = column_list(self.columns_loaded, MYSQL)
        statement = (
            f"INSERT INTO {self.table_sql} ({columns}) SELECT {columns} FROM {self.staging_sql}"
        )
        if self.request.mode == "upsert":
            statement += " " + self._on_duplicate_key(self.columns_loaded)
        await _execute(self.conn, "START TRANSACTION")
        try:
            await _execute(self.conn, statement)
            await _execute(self.conn, "COMMIT")
        except BaseException:
            await _execute(self.conn, "ROLLBACK")
            raise

    async def drop_staging(self) -> None:
        temporary = "" if self.publish_by_rename else "TEMPORARY "
        await _execute(self.conn, f"DROP {temporary}TABLE IF EXISTS {self.staging_sql}")

    async def close(self) -> None:
        await _close(self.conn)


# ---------------------------------------------------------------------------------------------
# The connector
# ---------------------------------------------------------------------------------------------


class MySQLConnector(Connector):
    type = "mysql"

    def spec(self) -> ConnectorSpec:
        return ConnectorSpec(
            type=self.type,
            title="MySQL / MariaDB",
            category="database",
            direction="both",
            config_schema=CONFIG_SCHEMA,
            ui_schema=UI_SCHEMA,
            docs=DOCS,
            secret_fields=["/password"],
        )

    async def check(self, config: dict[str, Any], ctx: ConnectorContext) -> CheckResult:
        try:
            net = _settings(config)
        except ConnectorError as exc:
            return check_failure(exc)

        async def probe() -> None:
            conn = await _connect(net, ctx)
            try:
                await _fetch(conn, "SELECT 1")
            finally:
                await _close(conn)

        return await run_check(probe, lambda exc: _categorize(exc, net), net.connect_timeout)

    async def discover(self, config: dict[str, Any], ctx: ConnectorContext) -> list[StreamSchema]:
        net = _settings(config)
        conn = await _connect(net, ctx)
        try:
            return await _load_catalog(conn, net.database)
        finally:
            await _close(conn)

    async def read(  # type: ignore[override]
        self, config: dict[str, Any], request: ReadRequest, ctx: ConnectorContext
    ) -> AsyncIterator[pl.DataFrame]:
        net = _settings(config)
        conn = await _connect(net, ctx)
        try:
            stream = await _stream_schema(conn, net.database, request.stream)
            cursor = validate_read_request(
                stream.fields, request.sync_mode, request.cursor_field, request.stream
            )
            plans, query = _read_query(stream, request, cursor)
            # Unbuffered: rows come off the socket batch by batch, memory stays bounded.
            db_cursor = conn.cursor(SSCursor)
            await db_cursor.execute(query.sql, query.params or None)
            yielded = False
            while rows := await db_cursor.fetchmany(request.batch_size):
                yielded = True
                yield frame_from_rows(rows, plans)
            if not yielded:
                yield empty_frame(plans)  # the columns, even when no row qualifies
        finally:
            # Closing the connection (not the cursor) avoids draining an abandoned result.
            conn.close()

    async def open_writer(
        self, config: dict[str, Any], request: WriteRequest, ctx: ConnectorContext
    ) -> Writer:
        net = _settings(config)
        conn = await _connect(net, ctx)
        try:
            streams = await _load_catalog(conn, net.database, request.stream)
            destination = streams[0] if streams else None
            if destination is not None and destination.kind == "view":
                raise ConnectorError(
                    CheckCategory.INVALID_CONFIG,
                    f"{request.stream!r} is a view; choose a table as destination",
                )
            return MySQLWriter(conn, request, destination)
        except BaseException:
            await _close(conn)
            raise
