"""PostgreSQL source and destination on asyncpg.

Discovery reads pg_catalog directly: relations with their primary keys, columns, foreign
keys, one query each per schema whatever its table count. Reads stream through a server-side cursor
into Polars frames. Writes COPY CSV produced by Polars into a temporary staging table and
publish it in one transaction at commit.
"""

from __future__ import annotations

import asyncio
import io
import operator
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import asyncpg
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
    NETWORK_WIDGETS,
    POSTGRES,
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
    empty_frame,
    frame_for_postgres_csv,
    frame_from_rows,
    gc_paused,
    grouped_ui_schema,
    is_staging_table,
    make_field,
    network_properties,
    object_schema,
    polars_dtype_for,
    quote_ident,
    quote_qualified,
    run_check,
    staging_table_name,
    stream_not_found,
    tls_properties,
    trusted_model,
    validate_read_request,
    validated_config,
)
from engine.schema import Field, LogicalType, StreamSchema

APPLICATION_NAME = "data-aggregator"
TLS_FIELD = "sslmode"
SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"]
ROW_SEQUENCE_COLUMN = "_da_row_seq"  # orders staged rows so the last one wins in an upsert

CONFIG_SCHEMA = object_schema(
    "PostgreSQL connection",
    {
        **network_properties(default_port=5432, default_user="postgres"),
        "schema": {
            "type": "string",
            "title": "Schema",
            "description": "Schema whose tables and views are discovered, read and written.",
            "minLength": 1,
            "default": "public",
            "examples": ["public", "analytics"],
        },
        **tls_properties(TLS_FIELD, SSL_MODES, default="prefer"),
    },
    required=["host", "database"],
)

UI_SCHEMA = grouped_ui_schema(
    {
        "Connection": ["host", "port", "database", "schema"],
        "Authentication": ["user", "password"],
        "Security": [TLS_FIELD, "tls_ca_cert"],
        "Advanced": ["connect_timeout"],
    },
    NETWORK_WIDGETS,
)

DOCS = """Reads tables and views of one PostgreSQL schema and writes tables into it.
Incremental reads need a cursor column that only grows (`updated_at`, a serial id).
Writes are staged and published in one transaction: a failed run changes nothing.
A destination user needs CREATE on the schema and INSERT/DELETE/TRUNCATE on the tables."""


@dataclass(frozen=True)
class PgSettings:
    network: NetworkSettings
    schema: str


def _settings(config: dict[str, Any]) -> PgSettings:
    config = validated_config(config, CONFIG_SCHEMA)
    return PgSettings(NetworkSettings.from_config(config, TLS_FIELD), config["schema"])


# ---------------------------------------------------------------------------------------------
# Connecting
# ---------------------------------------------------------------------------------------------


def _categorize(exc: BaseException, net: NetworkSettings) -> ConnectorError:
    server_message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return ConnectorError(
            CheckCategory.AUTH,
            f"Password authentication failed for user {net.user!r}. Check the password.",
            "/password",
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return ConnectorError(
            CheckCategory.AUTH,
            f"The server refused user {net.user!r}: {server_message}. Check the user name, "
            "and that pg_hba.conf admits this platform's address.",
            "/user",
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ConnectorError(
            CheckCategory.NOT_FOUND,
            f"Database {net.database!r} does not exist on {net.host}. Check its name.",
            "/database",
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return ConnectorError(
            CheckCategory.PERMISSION,
            f"User {net.user!r} lacks a privilege: {server_message}. Ask the database "
            "owner for CONNECT / USAGE / SELECT grants.",
            "/user",
        )
    if isinstance(exc, ConnectionError) and "SSL" in str(exc):
        return ConnectorError(
            CheckCategory.TLS,
            f"{exc}. Choose an SSL mode the server supports.",
            f"/{TLS_FIELD}",
        )
    if isinstance(exc, asyncpg.PostgresError):
        return ConnectorError(CheckCategory.CONNECT, f"PostgreSQL refused: {server_message}")
    return categorize_network_error(exc, net.host, net.port, net.connect_timeout, TLS_FIELD)


def _ssl_argument(net: NetworkSettings) -> Any:
    if net.tls_mode in ("disable", "prefer"):
        return net.tls_mode
    return client_ssl_context(net.tls_mode, net.tls_ca_cert, net.host)


async def _connect(net: NetworkSettings, ctx: ConnectorContext) -> asyncpg.Connection:
    """One connection per operation; the caller closes it. Errors come out categorised."""
    try:
        address = await ctx.resolve(net.host, net.port)
        return await asyncio.wait_for(
            asyncpg.connect(
                host=address,
                port=net.port,
                user=net.user,
                password=net.password,
                database=net.database,
                ssl=_ssl_argument(net),
                timeout=net.connect_timeout,
                # UTC sessions: naive timestamps written to timestamptz mean UTC everywhere.
                server_settings={"application_name": APPLICATION_NAME, "TimeZone": "UTC"},
            ),
            net.connect_timeout + 1,  # asyncpg's own timeout should fire first
        )
    except Exception as exc:
        raise _categorize(exc, net) from exc


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------

# A handful of pg_catalog queries per database, whatever the table count. Every query takes
# the schema ($1) and optionally one relation name ($2, NULL = the whole schema) for reads
# and writes. Rows come unsorted: Python orders them, which is cheaper than a server sort.
RELATIONS_FILTER = """
    c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
    AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
    AND ($2::text IS NULL OR c.relname = $2)
"""

# Relations with their primary key's column numbers (NULL without one).
RELATIONS_SQL = f"""
SELECT c.oid, c.relname, c.relkind::text, c.reltuples::float8, pk.conkey
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
WHERE {RELATIONS_FILTER}
"""

# Domains map as their base type, enums as text, composites as JSON; user-defined types are
# the only ones that need the pg_type lookup (oids below 16384 are built in).
COLUMNS_SQL = f"""
SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       CASE WHEN a.atttypid >= 16384 THEN (
           SELECT CASE t.typtype
                      WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod)
                      WHEN 'e' THEN 'enum'
                      WHEN 'c' THEN 'composite'
                  END
           FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid)
       END
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
WHERE a.attnum > 0 AND NOT a.attisdropped AND {RELATIONS_FILTER}
"""

# Column numbers are turned into names in Python from the columns already fetched; only
# references into other schemas need REFERENCED_COLUMNS_SQL.
# Filtering on the constraint's namespace avoids a join; rows of other relations are ignored.
FOREIGN_KEYS_SQL = """
SELECT con.conrelid, con.conkey, con.confrelid, con.confkey, rn.nspname, rc.relname
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype = 'f'
  AND con.connamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
ORDER BY con.conrelid, con.conname
"""

REFERENCED_COLUMNS_SQL = """
SELECT a.attrelid, a.attnum, a.attname
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0
"""

_VIEW_KINDS = {"v", "m"}
_TABLE_ORDER = operator.itemgetter(0, 1)  # relation oid, column number
_RELATION = operator.itemgetter(0)


@dataclass(frozen=True)
class _CatalogRows:
    """Everything the catalog queries returned, fetched before any assembly starts."""

    relations: list[asyncpg.Record]
    columns: list[asyncpg.Record]
    foreign_keys: list[asyncpg.Record]
    referenced_columns: list[asyncpg.Record]


async def _load_catalog(
    conn: asyncpg.Connection,
    schema: str,
    only: str | None = None,
    *,
    foreign_keys: bool = True,
) -> list[StreamSchema]:
    # Tens of thousands of rows and models are allocated below, none of them cyclic.
    with gc_paused():
        relations = await conn.fetch(RELATIONS_SQL, schema, only)
        columns = await conn.fetch(COLUMNS_SQL, schema, only)
        fk_rows = await conn.fetch(FOREIGN_KEYS_SQL, schema) if foreign_keys else []
        own = {row[0] for row in relations}
        outside = list({row[2] for row in fk_rows if row[0] in own} - own)
        referenced = await conn.fetch(REFERENCED_COLUMNS_SQL, outside) if outside else []
        rows = _CatalogRows(relations, columns, fk_rows, referenced)
        return _assemble_streams(rows, schema)


def _assemble_streams(rows: _CatalogRows, schema: str) -> list[StreamSchema]:
    relations = {
        oid: (name, kind, reltuples)
        for oid, name, kind, reltuples, _ in rows.relations
        if not is_staging_table(name)
    }
    keys = {oid: set(key) for oid, *_, key in rows.relations if key}
    own_fks = [row for row in rows.foreign_keys if row[0] in relations]
    # Column numbers → names, only for the relations foreign keys need.
    named = {row[0] for row in own_fks} | {row[2] for row in own_fks}
    column_names: dict[int, dict[int, str]] = {}
    fields: dict[int, list[Field]] = {}
    for relid, table_columns in groupby(sorted(rows.columns, key=_TABLE_ORDER), _RELATION):
        if relid not in relations:
            continue
        table_columns = list(table_columns)
        key = keys.get(relid, ())
        fields[relid] = [
            make_field(name, native, not not_null, number in key, POSTGRES, base)
            for _, number, name, native, not_null, base in table_columns
        ]
        if relid in named:
            column_names[relid] = {row[1]: row[2] for row in table_columns}
    for relid, number, name in rows.referenced_columns:
        column_names.setdefault(relid, {})[number] = name
    foreign_keys = _foreign_keys(own_fks, column_names, schema)
    streams = [
        trusted_model(
            StreamSchema,
            name=name,
            fields=fields.get(oid, []),
            row_estimate=_row_estimate(kind, reltuples),
            foreign_keys=foreign_keys.get(oid, []),
            kind="view" if kind in _VIEW_KINDS else "table",
        )
        for oid, (name, kind, reltuples) in relations.items()
    ]
    return sorted(streams, key=lambda stream: stream.name)


def _foreign_keys(
    rows: Sequence[asyncpg.Record], column_names: dict[int, dict[int, str]], schema: str
) -> dict[int, list[dict[str, Any]]]:
    by_table: dict[int, list[dict[str, Any]]] = {}
    for relid, key, ref_relid, ref_key, ref_schema, ref_table in rows:
        # References inside the configured schema use the bare name, like stream names do.
        by_table.setdefault(relid, []).append(
            {
                "columns": [column_names[relid][n] for n in key],
                "ref_table": ref_table if ref_schema == schema else f"{ref_schema}.{ref_table}",
                "ref_columns": [column_names[ref_relid][n] for n in ref_key],
            }
        )
    return by_table


def _row_estimate(kind: str, reltuples: float) -> int | None:
    # Views have no statistics; -1 means the table was never vacuumed or analysed.
    if kind == "v" or reltuples < 0:
        return None
    return int(reltuples)


async def _stream_schema(conn: asyncpg.Connection, schema: str, stream: str) -> StreamSchema:
    streams = await _load_catalog(conn, schema, stream, foreign_keys=False)
    if not streams:
        raise stream_not_found(stream, f"schema {schema!r}")
    return streams[0]


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

_JSON_NATIVE = {"json", "jsonb"}


def _column_plan(field: Field) -> ColumnPlan:
    name = quote_ident(field.name, POSTGRES)
    native = field.native_type or ""
    if field.type == LogicalType.JSON:
        # Arrays and composites become JSON text; json/jsonb keep their own text.
        select = f"{name}::text" if native in _JSON_NATIVE else f"to_jsonb({name})::text"
    elif field.type in (LogicalType.STRING, LogicalType.UNKNOWN):
        select = f"{name}::text"  # uuid, inet, enum, interval... arrive as their text form
    elif field.type == LogicalType.DECIMAL:
        select = f"NULLIF({name}, 'NaN')"  # a Polars decimal has no NaN: read it as null
    else:
        select = name
    dtype = polars_dtype_for(field.type, native)
    return ColumnPlan(field.name, f"{select} AS {name}", dtype)


def _read_query(
    stream: StreamSchema, schema: str, request: ReadRequest, cursor: str | None
) -> tuple[list[ColumnPlan], SelectQuery]:
    plans = [_column_plan(f) for f in stream.fields]
    cursor_sql = cursor_placeholder = cursor_value = None
    if cursor is not None:
        cursor_sql = quote_ident(cursor, POSTGRES)
        native = next(f.native_type for f in stream.fields if f.name == cursor)
        # The state is JSON: send text and let PostgreSQL cast it to the column's type.
        cursor_placeholder = f"$1::text::{native}"
        state_cursor = (request.state or {}).get("cursor")
        cursor_value = None if state_cursor is None else cursor_param_text(state_cursor)
    query = build_select(
        quote_qualified(POSTGRES, schema, stream.name),
        plans,
        cursor_sql=cursor_sql,
        cursor_placeholder=cursor_placeholder,
        cursor_value=cursor_value,
        limit=request.limit,
    )
    return plans, query


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


class PostgresWriter(StagedSqlWriter):
    """COPY into a temporary table (it dies with the session if this process does), then
    INSERT … SELECT / TRUNCATE + INSERT / INSERT … ON CONFLICT in one transaction."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        request: WriteRequest,
        schema: str,
        destination: StreamSchema | None,
    ) -> None:
        super().__init__(request, destination)
        self.conn = conn
        self.table_sql = quote_qualified(POSTGRES, schema, request.stream)
        self.staging = staging_table_name(request.stream, POSTGRES)

    async def create_staging(self, schema: pl.Schema) -> None:
        staging_sql = quote_ident(self.staging, POSTGRES)
        if self.destination is not None:
            # Column names and types only: defaults (serials!) and constraints apply once, at
            # publish, to the columns actually written.
            ddl = f"CREATE TEMP TABLE {staging_sql} AS SELECT * FROM {self.table_sql} WITH NO DATA"
        else:
            ddl = create_table_sql(staging_sql, schema, POSTGRES, temporary=True)
        await self.conn.execute(ddl)
        if self.request.mode == "upsert":
            sequence = quote_ident(ROW_SEQUENCE_COLUMN, POSTGRES)
            await self.conn.execute(f"ALTER TABLE {staging_sql} ADD COLUMN {sequence} bigserial")

    async def load_batch(self, frame: pl.DataFrame) -> None:
        buffer = io.BytesIO()
        # Quoting every text value keeps a lone `\.` (COPY's end-of-data marker) as data;
        # nulls stay unquoted and empty, which COPY's CSV format reads as NULL.
        csv_frame = frame_for_postgres_csv(frame)
        csv_frame.write_csv(buffer, include_header=False, quote_style="non_numeric")
        buffer.seek(0)
        status = await self.conn.copy_to_table(
            self.staging, source=buffer, columns=frame.columns, format="csv"
        )
        copied = int(status.rsplit(" ", 1)[-1])  # "COPY <rows>"
        if copied != frame.height:  # never publish a batch that lost rows on the way
            raise ConnectorError(
                CheckCategory.CONNECT,
                f"PostgreSQL took {copied} of {frame.height} rows of a batch for "
                f"{self.request.stream!r}; nothing was published",
            )

    async def publish(self, *, staged: bool) -> None:
        async with self.conn.transaction():
            if self.destination is None:
                if not staged:
                    return  # nothing was written and there is nothing to replace
                await self._create_destination()
            elif self.request.mode == "replace":
                await self.conn.execute(f"TRUNCATE {self.table_sql}")
            if self.rows_staged:
                await self.conn.execute(self._insert_sql())

    async def _create_destination(self) -> None:
        assert self.staged_schema is not None
        await self.conn.execute(
            create_table_sql(
                self.table_sql, self.staged_schema, POSTGRES, primary_key=self.new_table_key
            )
        )

    def _insert_sql(self) -> str:
        columns = column_list(self.columns_loaded, POSTGRES)
        staging_sql = quote_ident(self.staging, POSTGRES)
        insert = f"INSERT INTO {self.table_sql} ({columns})"
        if self.request.mode != "upsert":
            return f"{insert} SELECT {columns} FROM {staging_sql}"
        keys = column_list(self.key, POSTGRES)
        sequence = quote_ident(ROW_SEQUENCE_COLUMN, POSTGRES)
        # ON CONFLICT may touch a row once per statement: keep the last staged row per key.
        latest = (
            f"SELECT DISTINCT ON ({keys}) {columns} FROM {staging_sql} "
            f"ORDER BY {keys}, {sequence} DESC"
        )
        updates = [c for c in self.columns_loaded if c not in self.key]
        action = (
            "DO UPDATE SET "
            + ", ".join(
                f"{quote_ident(c, POSTGRES)} = EXCLUDED.{quote_ident(c, POSTGRES)}" for c in updates
            )
            if updates
            else "DO NOTHING"
        )
        return f"{insert} {latest} ON CONFLICT ({keys}) {action}"

    async def drop_staging(self) -> None:
        await self.conn.execute(f"DROP TABLE IF EXISTS {quote_ident(self.staging, POSTGRES)}")

    async def close(self) -> None:
        await self.conn.close(timeout=5)


# ---------------------------------------------------------------------------------------------
# The connector
# ---------------------------------------------------------------------------------------------


class PostgresConnector(Connector):
    type = "postgres"

    def spec(self) -> ConnectorSpec:
        return ConnectorSpec(
            type=self.type,
            title="PostgreSQL",
            category="database",
            direction="both",
            config_schema=CONFIG_SCHEMA,
            ui_schema=UI_SCHEMA,
            docs=DOCS,
            secret_fields=["/password"],
        )

    async def check(self, config: dict[str, Any], ctx: ConnectorContext) -> CheckResult:
        try:
            settings = _settings(config)
        except ConnectorError as exc:
            return check_failure(exc)
        net = settings.network

        async def probe() -> None:
            conn = await _connect(net, ctx)
            try:
                await _check_schema_access(conn, settings.schema)
            finally:
                await conn.close(timeout=5)

        return await run_check(probe, lambda exc: _categorize(exc, net), net.connect_timeout)

    async def discover(self, config: dict[str, Any], ctx: ConnectorContext) -> list[StreamSchema]:
        settings = _settings(config)
        conn = await _connect(settings.network, ctx)
        try:
            return await _load_catalog(conn, settings.schema)
        finally:
            await conn.close(timeout=5)

    async def read(  # type: ignore[override]
        self, config: dict[str, Any], request: ReadRequest, ctx: ConnectorContext
    ) -> AsyncIterator[pl.DataFrame]:
        settings = _settings(config)
        conn = await _connect(settings.network, ctx)
        try:
            stream = await _stream_schema(conn, settings.schema, request.stream)
            cursor = validate_read_request(
                stream.fields, request.sync_mode, request.cursor_field, request.stream
            )
            plans, query = _read_query(stream, settings.schema, request, cursor)
            # One snapshot for the whole read; the server-side cursor keeps memory bounded.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                db_cursor = await conn.cursor(query.sql, *query.params)
                yielded = False
                while rows := await db_cursor.fetch(request.batch_size):
                    yielded = True
                    yield frame_from_rows(rows, plans)
                if not yielded:
                    yield empty_frame(plans)  # the columns, even when no row qualifies
        finally:
            await conn.close(timeout=5)

    async def open_writer(
        self, config: dict[str, Any], request: WriteRequest, ctx: ConnectorContext
    ) -> Writer:
        settings = _settings(config)
        conn = await _connect(settings.network, ctx)
        try:
            streams = await _load_catalog(conn, settings.schema, request.stream, foreign_keys=False)
            destination = streams[0] if streams else None
            if destination is not None and destination.kind == "view":
                raise ConnectorError(
                    CheckCategory.INVALID_CONFIG,
                    f"{request.stream!r} is a view; choose a table as destination",
                )
            return PostgresWriter(conn, request, settings.schema, destination)
        except BaseException:
            await conn.close(timeout=5)
            raise


async def _check_schema_access(conn: asyncpg.Connection, schema: str) -> None:
    row = await conn.fetchrow(
        "SELECT n.oid IS NOT NULL, COALESCE(has_schema_privilege(n.oid, 'USAGE'), false) "
        "FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = $1",
        schema,
    )
    exists, usable = row
    if not exists:
        raise ConnectorError(
            CheckCategory.NOT_FOUND,
            f"Schema {schema!r} does not exist in this database. Check its name.",
            "/schema",
        )
    if not usable:
        raise ConnectorError(
            CheckCategory.PERMISSION,
            f"The user may not use schema {schema!r}: ask for GRANT USAGE ON SCHEMA.",
            "/schema",
        )
