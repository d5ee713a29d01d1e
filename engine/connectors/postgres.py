"""PostgreSQL source and destination on asyncpg.

Discovery reads pg_catalog directly: relations with their primary keys, then their columns
a chunk of relations at a time (Python builds one chunk's fields while the server fetches the
next), each distinct column type once, foreign keys. Reads are one `COPY (SELECT …) TO
STDOUT` whose CSV Polars parses, typed from the catalog. Writes COPY CSV produced by Polars
into a temporary staging table and publish it in one transaction at commit, or, for a table
that does not exist yet, into the new table inside that transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import operator
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from typing import Any

import asyncpg
import polars as pl
from asyncpg.transaction import Transaction
from pydantic import BaseModel

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
    POLARS_MAX_DECIMAL_PRECISION,
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
    frame_for_postgres_csv,
    gc_paused,
    grouped_ui_schema,
    is_staging_table,
    is_tz_aware,
    logical_type_for,
    network_properties,
    normalize_native_type,
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


_closing: set[asyncio.Task[None]] = set()  # strong references until each close is done


def _close_in_background(conn: asyncpg.Connection) -> None:
    """Close without making the caller wait for the server's goodbye: a backend that has
    loaded a large catalog takes several milliseconds to exit, and nothing the caller does
    next depends on it."""

    async def close() -> None:
        with contextlib.suppress(Exception):
            await conn.close(timeout=5)

    task = asyncio.get_running_loop().create_task(close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------

# A handful of pg_catalog queries per database, plus one per chunk of relations. Relations
# and foreign keys are looked up by schema ($1), relations optionally by one name ($2,
# NULL = the whole schema) for reads and writes. Rows come unsorted: Python orders them,
# which is cheaper than a server sort.
RELATIONS_FILTER = """
    c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
    AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
    AND ($2::text IS NULL OR c.relname = $2)
"""

# Relations with their primary key's column numbers (NULL without one).
RELATIONS_SQL = f"""
SELECT c.oid, c.relname, c.relkind::text, c.reltuples::float8, array_to_string(pk.conkey, ',')
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
WHERE {RELATIONS_FILTER}
"""

# The columns of a chunk of relations, by oid. A type key rather than format_type(): spelling
# every column's type costs a fresh backend more than the scan does, and a schema uses few
# distinct types, spelled once each by TYPES_SQL. The key packs type oid and modifier (-1 or
# more) into one bigint, so Python handles one number per column.
COLUMNS_SQL = """
SELECT a.attrelid, a.attnum, a.attname, (a.atttypid::int8 << 32) | (a.atttypmod + 1),
       NOT a.attnotnull
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
"""
RELATIONS_PER_CHUNK = 200

# The spelling of each distinct type key, and what it maps as when that differs: domains map
# as their base type, enums as text, composites as JSON. Only user-defined types need the
# pg_type lookup (oids below 16384 are built in). Keys travel as text[]: an int8[] parameter
# would make asyncpg introspect that array type on every fresh connection.
TYPES_SQL = """
SELECT u.key, format_type(u.oid, u.typmod),
       CASE WHEN u.oid >= 16384 THEN (
           SELECT CASE t.typtype
                      WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod)
                      WHEN 'e' THEN 'enum'
                      WHEN 'c' THEN 'composite'
                  END
           FROM pg_catalog.pg_type t WHERE t.oid = u.oid)
       END
FROM (SELECT key, (key >> 32)::oid AS oid, ((key & 4294967295) - 1)::int4 AS typmod
      FROM unnest($1::text[]::int8[]) AS key) AS u
"""

# Column numbers are turned into names in Python from the columns already fetched; only
# references into other schemas need REFERENCED_COLUMNS_SQL.
# Filtering on the constraint's namespace avoids a join; rows of other relations are ignored.
FOREIGN_KEYS_SQL = """
SELECT con.conrelid, array_to_string(con.conkey, ','), con.confrelid,
       array_to_string(con.confkey, ','), rn.nspname, rc.relname
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
_RELATION = operator.itemgetter(0)
_TYPE_KEY = operator.itemgetter(3)  # see COLUMNS_SQL
_TABLE_ORDER = operator.itemgetter(0, 1)  # relation oid, column number
_NO_KEY: frozenset[int] = frozenset()

# A column's native spelling and logical type, by its type key.
_ColumnTypes = dict[int, tuple[str, LogicalType]]


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
        catalog = _Catalog([row for row in relations if not is_staging_table(row[1])])
        del relations
        fk_query = None
        if foreign_keys:  # prepared now, so that it runs while the last columns are worked on
            fk_query = partial((await conn.prepare(FOREIGN_KEYS_SQL)).fetch, schema)
        fk_rows = await _read_columns(conn, catalog, fk_query)
        own_fks = [row for row in fk_rows if row[0] in catalog.relations]
        outside = list({row[2] for row in own_fks} - catalog.fields.keys())
        if outside:
            catalog.add_outside_columns(await conn.fetch(REFERENCED_COLUMNS_SQL, outside))
        streams = catalog.streams(own_fks, schema)
        # Free the driver's rows while the collector is still off: the collection that
        # follows its return then has only the result to scan. (Column rows went chunk by
        # chunk.)
        del catalog, fk_rows, own_fks
    return streams


async def _read_columns(
    conn: asyncpg.Connection,
    catalog: _Catalog,
    then: Callable[[], Awaitable[list[asyncpg.Record]]] | None,
) -> list[asyncpg.Record]:
    """Feed the catalog its relations' columns a chunk at a time. Each chunk is worked on
    while the server runs the next query, the last one `then` (whose rows are returned):
    otherwise the server and Python would take turns, each idle while the other works."""
    relids = list(catalog.relations)
    received: list[asyncpg.Record] = []
    for start in range(0, len(relids), RELATIONS_PER_CHUNK):
        chunk = relids[start : start + RELATIONS_PER_CHUNK]
        received = await _while_fetching(
            conn.fetch(COLUMNS_SQL, chunk), partial(catalog.add_columns, received)
        )
        await _learn_types(conn, catalog.types, received)  # before add_columns needs them
    if then is None:
        catalog.add_columns(received)
        return []
    return await _while_fetching(then(), partial(catalog.add_columns, received))


async def _while_fetching(
    query: Awaitable[list[asyncpg.Record]], work: Callable[[], None]
) -> list[asyncpg.Record]:
    """Do `work` while the server runs `query`. A query whose statement the connection has
    prepared already sends its request as soon as its task first runs."""
    pending = asyncio.ensure_future(query)
    try:
        await asyncio.sleep(0)
        work()
    except BaseException:
        with contextlib.suppress(Exception):
            await pending  # leave the connection idle, as the caller expects it
        raise
    return await pending


async def _learn_types(
    conn: asyncpg.Connection, types: _ColumnTypes, columns: list[asyncpg.Record]
) -> None:
    """Spell and map the types of `columns` not seen before."""
    keys = set(map(_TYPE_KEY, columns)) - types.keys()
    if not keys:
        return
    for key, native, mapped_as in await conn.fetch(TYPES_SQL, [str(key) for key in keys]):
        types[key] = (native, logical_type_for(mapped_as or native, POSTGRES))


class _Catalog:
    """Streams assembled from catalog rows, columns added as they arrive."""

    def __init__(self, relations: list[asyncpg.Record]) -> None:
        self.relations = {
            oid: (name, kind, reltuples) for oid, name, kind, reltuples, _ in relations
        }
        self.keys = {oid: frozenset(_column_numbers(key)) for oid, *_, key in relations if key}
        self.types: _ColumnTypes = {}
        self.fields: dict[int, list[Field]] = {}
        # Column numbers of the relations where dropped columns left gaps; elsewhere column
        # n is field n - 1. Keeping these rather than the rows frees each chunk's rows early.
        self.numbers: dict[int, list[int]] = {}
        self.outside: dict[int, dict[int, str]] = {}  # names in relations of other schemas

    def add_columns(self, rows: list[asyncpg.Record]) -> None:
        for relid, table_columns in groupby(sorted(rows, key=_TABLE_ORDER), _RELATION):
            table_columns = list(table_columns)
            self.fields[relid] = _fields(table_columns, self.types, self.keys.get(relid, _NO_KEY))
            if table_columns[-1][1] != len(table_columns):
                self.numbers[relid] = [row[1] for row in table_columns]

    def add_outside_columns(self, rows: list[asyncpg.Record]) -> None:
        for relid, number, name in rows:
            self.outside.setdefault(relid, {})[number] = name

    def column_names(self, relid: int, key: str) -> list[str]:
        """The names of a constraint's columns, listed by number in `key` (see
        _column_numbers); a thousand foreign keys make this worth keeping lean."""
        fields = self.fields.get(relid)
        if fields is None:
            names = self.outside[relid]
            return [names[int(number)] for number in key.split(",")]
        gapped = self.numbers.get(relid)
        if gapped is None:
            return [fields[int(number) - 1].name for number in key.split(",")]
        return [fields[gapped.index(int(number))].name for number in key.split(",")]

    def streams(self, fk_rows: list[asyncpg.Record], schema: str) -> list[StreamSchema]:
        """The streams, given the foreign keys of their relations."""
        foreign_keys = _foreign_keys(fk_rows, self.column_names, schema)
        streams = [
            trusted_model(
                StreamSchema,
                name=name,
                fields=self.fields.get(oid, []),
                row_estimate=_row_estimate(kind, reltuples),
                foreign_keys=foreign_keys.get(oid, []),
                kind="view" if kind in _VIEW_KINDS else "table",
            )
            for oid, (name, kind, reltuples) in self.relations.items()
        ]
        return sorted(streams, key=lambda stream: stream.name)


def _fields(
    table_columns: Iterable[asyncpg.Record], types: _ColumnTypes, key: frozenset[int]
) -> list[Field]:
    """One relation's fields, assembled without validation: the values come from the catalog
    and are already exactly the field types. This runs once per column of a whole database
    (20,000 in the benchmark), hence the spelled-out construction."""
    made = []
    for _, number, name, type_key, nullable in table_columns:
        native, logical = types[type_key]
        field = _new_object(Field)
        _set_dict(
            field,
            {
                "name": name,
                "type": logical,
                "nullable": nullable,
                "native_type": native,
                "primary_key": number in key,
            },
        )
        _set_fields_set(field, _ALL_FIELD_NAMES)
        _set_extra(field, None)
        _set_private(field, None)
        made.append(field)
    return made


# What `trusted_model` does, through the slot descriptors themselves: a fifth faster than
# object.__setattr__, which matters 20,000 times over.
_new_object = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__pydantic_fields_set__.__set__  # type: ignore[attr-defined]
_set_extra = BaseModel.__pydantic_extra__.__set__  # type: ignore[attr-defined]
_set_private = BaseModel.__pydantic_private__.__set__  # type: ignore[attr-defined]
# Shared by every field, which sets all of them: pydantic only ever adds names to it.
_ALL_FIELD_NAMES = set(Field.model_fields)


def _foreign_keys(
    rows: Sequence[asyncpg.Record], column_names: Callable[[int, str], list[str]], schema: str
) -> dict[int, list[dict[str, Any]]]:
    by_table: dict[int, list[dict[str, Any]]] = {}
    for relid, key, ref_relid, ref_key, ref_schema, ref_table in rows:
        # References inside the configured schema use the bare name, like stream names do.
        by_table.setdefault(relid, []).append(
            {
                "columns": column_names(relid, key),
                "ref_table": ref_table if ref_schema == schema else f"{ref_schema}.{ref_table}",
                "ref_columns": column_names(ref_relid, ref_key),
            }
        )
    return by_table


def _column_numbers(text: str) -> list[int]:
    """Constraint column numbers, sent as '1,2' text: an int2[] result would make asyncpg
    introspect the array type on every fresh connection, a 10 ms catalog round trip."""
    return list(map(int, text.split(",")))


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


@dataclass(frozen=True)
class _CsvColumn:
    """How one column travels through COPY's CSV output: the expression selected, the dtype
    Polars parses its text as, and what turns that into the column's dtype."""

    name: str
    select_sql: str
    csv_dtype: pl.DataType
    finish: Callable[[pl.Series], pl.Series] | None = None


def _csv_column(field: Field) -> _CsvColumn:
    name = quote_ident(field.name, POSTGRES)
    native = field.native_type or ""
    dtype = polars_dtype_for(field.type, native)
    select, finish = name, None
    match field.type:
        case LogicalType.JSON:
            # Arrays and composites become JSON text; json/jsonb keep their own text.
            select = f"{name}::text" if native in _JSON_NATIVE else f"to_jsonb({name})::text"
        case LogicalType.DECIMAL:
            select = f"NULLIF({name}, 'NaN')"  # a Polars decimal has no NaN: read it as null
            if dtype is None:  # no declared precision: infer it from the values
                dtype, finish = pl.String(), _inferred_decimal
        case LogicalType.BOOLEAN:
            select = f"{name}::text"  # true/false, which Polars parses (COPY writes t/f)
        case LogicalType.DATETIME if is_tz_aware(native):
            select = f"({name} AT TIME ZONE 'UTC')"  # parsed naive, then marked as UTC
            dtype, finish = pl.Datetime("us"), _as_utc
        case LogicalType.BINARY if normalize_native_type(native) == "bytea":
            select, dtype, finish = f"encode({name}, 'hex')", pl.String(), _from_hex
        case LogicalType.INTEGER | LogicalType.NUMBER | LogicalType.DATE:
            pass
        case LogicalType.DATETIME | LogicalType.TIME:
            pass
        case _:
            # uuid, inet, enum, interval, other binaries... arrive as their text form
            select, dtype = f"{name}::text", pl.String()
    assert dtype is not None
    return _CsvColumn(field.name, f"{select} AS {name}", dtype, finish)


def _inferred_decimal(series: pl.Series) -> pl.Series:
    if series.dtype != pl.String:
        return series
    values = series.drop_nulls()  # Polars cannot infer past a leading null
    if values.is_empty():
        return series
    try:
        scale = values.str.to_decimal(inference_length=values.len()).dtype.scale  # type: ignore[attr-defined]
        return series.cast(pl.Decimal(POLARS_MAX_DECIMAL_PRECISION, scale), strict=True)
    except _SERIES_ERRORS:
        return series  # beyond what a Polars decimal holds: keep the text


def _as_utc(series: pl.Series) -> pl.Series:
    return series.dt.replace_time_zone("UTC") if series.dtype == pl.Datetime else series


def _from_hex(series: pl.Series) -> pl.Series:
    return series.str.decode("hex")


# Polars raises some conversion failures as a Rust panic, which is a BaseException.
_SERIES_ERRORS = (Exception, pl.exceptions.PanicException)


def _parse_csv(data: bytes, columns: Sequence[_CsvColumn]) -> pl.DataFrame:
    """COPY's CSV (no header) → a frame. Runs in a worker thread."""
    try:
        frame = pl.read_csv(data, has_header=False, schema={c.name: c.csv_dtype for c in columns})
    except _SERIES_ERRORS:
        frame = _parse_csv_leniently(data, columns)
    finishes = [c.finish(frame.get_column(c.name)) for c in columns if c.finish]
    return frame.with_columns(finishes) if finishes else frame


def _parse_csv_leniently(data: bytes, columns: Sequence[_CsvColumn]) -> pl.DataFrame:
    """Values the dtype cannot hold (infinite dates, 24:00 times, years beyond 9999): such a
    column stays text rather than failing the whole read."""
    text = pl.read_csv(data, has_header=False, schema={c.name: pl.String() for c in columns})
    return pl.DataFrame([_parse_text(text.get_column(c.name), c.csv_dtype) for c in columns])


def _parse_text(series: pl.Series, dtype: pl.DataType) -> pl.Series:
    try:
        if dtype == pl.Date:
            return series.str.to_date("%Y-%m-%d")
        if dtype == pl.Datetime:
            return series.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
        if dtype == pl.Time:
            return series.str.to_time("%H:%M:%S%.f")
        if dtype == pl.Boolean:
            return series == "true"
        return series.cast(dtype)
    except _SERIES_ERRORS:
        return series


def _empty_frame(columns: Sequence[_CsvColumn]) -> pl.DataFrame:
    frame = pl.DataFrame(schema={c.name: c.csv_dtype for c in columns})
    return frame.with_columns([c.finish(frame.get_column(c.name)) for c in columns if c.finish])


def _read_query(
    stream: StreamSchema, schema: str, request: ReadRequest, cursor: str | None
) -> tuple[list[_CsvColumn], SelectQuery]:
    columns = [_csv_column(f) for f in stream.fields]
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
        [ColumnPlan(c.name, c.select_sql, None) for c in columns],
        cursor_sql=cursor_sql,
        cursor_placeholder=cursor_placeholder,
        cursor_value=cursor_value,
        limit=request.limit,
    )
    return columns, query


def _complete_records(data: bytes | bytearray) -> int:
    """The length of the longest prefix of `data` made of whole CSV records.

    A newline ends a record unless it sits inside quotes; COPY doubles quotes inside quoted
    values, so a newline is outside them when an even number of quotes precedes it."""
    end = data.rfind(b"\n")
    if end < 0:
        return 0
    quotes = data.count(b'"', 0, end)
    while quotes % 2:
        previous = data.rfind(b"\n", 0, end)
        if previous < 0:
            return 0
        quotes -= data.count(b'"', previous, end)
        end = previous
    return end + 1


def _parse_records(
    pending: bytearray, columns: Sequence[_CsvColumn], final: bool
) -> pl.DataFrame | None:
    """Parse and remove the whole records at the start of `pending` (everything when the
    COPY is over); None when it does not hold one whole record yet. Runs in a worker thread:
    the scans and copies of megabytes are kept off the event loop."""
    cut = len(pending) if final else _complete_records(pending)
    if not cut:
        return None
    with memoryview(pending) as view:
        data = bytes(view[:cut])
    del pending[:cut]
    return _parse_csv(data, columns)


_COPY_PIECE_BYTES = 1 << 20  # what the COPY task hands over at a time
_COPY_PIECES_AHEAD = 16  # how far the COPY may run ahead of the consumer (bounded memory)
_MIN_PARSE_BYTES = 1 << 16
_FIRST_ROW_BYTES_GUESS = 100


class _CopyReader:
    """Runs `COPY (SELECT …) TO STDOUT (FORMAT csv)` in a task that keeps receiving while
    the caller works on earlier rows; hands out Polars frames of exactly `batch_size` rows
    (the last may be shorter), parsed in a worker thread."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        query: SelectQuery,
        columns: Sequence[_CsvColumn],
        batch_size: int,
    ) -> None:
        self.columns, self.batch_size = columns, batch_size
        self.pieces: asyncio.Queue[bytes] = asyncio.Queue(_COPY_PIECES_AHEAD)
        self.gathering = bytearray()
        self.task = asyncio.get_running_loop().create_task(self._copy(conn, query))

    async def _copy(self, conn: asyncpg.Connection, query: SelectQuery) -> str:
        status = await conn.copy_from_query(
            query.sql, *query.params, output=self._receive, format="csv"
        )
        if self.gathering:
            await self.pieces.put(bytes(self.gathering))
        return status

    async def _receive(self, data: bytes) -> None:
        # COPY sends a message per row; gathering them keeps the hand-overs few.
        self.gathering += data
        if len(self.gathering) >= _COPY_PIECE_BYTES:
            piece, self.gathering = bytes(self.gathering), bytearray()
            await self.pieces.put(piece)  # waits while the consumer is behind

    async def _next_piece(self) -> bytes | None:
        """The next piece of CSV, or None once the COPY is over (its error raised)."""
        if not self.pieces.empty():
            return self.pieces.get_nowait()
        getter = asyncio.ensure_future(self.pieces.get())
        await asyncio.wait((getter, self.task), return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        if not self.pieces.empty():
            return self.pieces.get_nowait()
        self.task.result()
        return None

    async def frames(self) -> AsyncIterator[pl.DataFrame]:
        pending = bytearray()
        parsed: list[pl.DataFrame] = []
        parsed_rows = yielded_rows = parsed_bytes = 0
        finished = False
        while not finished:
            row_bytes = parsed_bytes / parsed_rows if parsed_rows else _FIRST_ROW_BYTES_GUESS
            target = max(_MIN_PARSE_BYTES, int(self.batch_size * row_bytes))
            while len(pending) < target:
                piece = await self._next_piece()
                if piece is None:
                    finished = True
                    break
                pending += piece
            if not pending:
                break
            waiting = len(pending)
            frame = await asyncio.to_thread(_parse_records, pending, self.columns, finished)
            if frame is None:  # one record longer than the target: read on until it ends
                piece = await self._next_piece()
                finished = piece is None
                pending += piece or b""
                continue
            parsed.append(frame)
            parsed_rows += frame.height
            parsed_bytes += waiting - len(pending)
            while parsed_rows - yielded_rows >= self.batch_size:
                batch, parsed = _take_rows(parsed, self.batch_size)
                yielded_rows += batch.height
                yield batch
        copied = int(self.task.result().rsplit(" ", 1)[-1])  # "COPY <rows>"
        if copied != parsed_rows:  # never hand on a read that lost rows on the way
            raise ConnectorError(
                CheckCategory.CONNECT,
                f"PostgreSQL sent {copied} rows but {parsed_rows} arrived intact",
            )
        if parsed_rows > yielded_rows:
            yield pl.concat(parsed, rechunk=False) if len(parsed) > 1 else parsed[0]
        elif not yielded_rows:
            yield _empty_frame(self.columns)  # the columns, even when no row qualifies

    async def close(self) -> bool:
        """Stop the COPY if it is still running; True when it had to be stopped."""
        if self.task.done():
            if not self.task.cancelled():
                self.task.exception()  # seen by frames() already, or of no interest now
            return False
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        return True


def _take_rows(frames: list[pl.DataFrame], count: int) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """The first `count` rows of `frames` (fewer if they hold fewer), and the rest."""
    taken, rest, needed = [], [], count
    for frame in frames:
        if needed >= frame.height:
            taken.append(frame)
            needed -= frame.height
        elif needed:
            taken.append(frame.slice(0, needed))
            rest.append(frame.slice(needed))
            needed = 0
        else:
            rest.append(frame)
    batch = taken[0] if len(taken) == 1 else pl.concat(taken, rechunk=False)
    return batch, rest


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _copy_csv(frame: pl.DataFrame) -> io.BytesIO:
    """A batch as CSV for COPY. Quoting every text value keeps a lone `\\.` (COPY's
    end-of-data marker) as data; nulls stay unquoted and empty, which COPY reads as NULL."""
    buffer = io.BytesIO()
    csv_frame = frame_for_postgres_csv(frame)
    csv_frame.write_csv(buffer, include_header=False, quote_style="non_numeric")
    buffer.seek(0)
    return buffer


class PostgresWriter(StagedSqlWriter):
    """Into an existing table: COPY into a temporary table (it dies with the session if this
    process does), then INSERT … SELECT / TRUNCATE + INSERT / INSERT … ON CONFLICT in one
    transaction at commit, so the table keeps serving its old rows until then.

    Into a table that does not exist yet (append, replace): create it and COPY straight into
    it inside one transaction that commit commits and abort rolls back. Nobody else sees the
    table before commit, and the rows are written once instead of twice.

    Each batch's COPY runs while the caller prepares the next; its outcome is awaited before
    the next COPY, at commit and at abort."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        request: WriteRequest,
        schema: str,
        destination: StreamSchema | None,
    ) -> None:
        super().__init__(request, destination)
        self.conn = conn
        self.schema = schema
        self.table_sql = quote_qualified(POSTGRES, schema, request.stream)
        self.staging = staging_table_name(request.stream, POSTGRES)
        # Upserts dedupe by key at publish, so they always stage.
        self.direct = destination is None and request.mode != "upsert"
        self.transaction: Transaction | None = None  # the direct write's, until it ends
        self.copying: asyncio.Task[None] | None = None

    async def create_staging(self, schema: pl.Schema) -> None:
        if self.direct:
            self.transaction = self.conn.transaction()
            await self.transaction.start()
            await self._create_destination(schema)
            return
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
        # Serialised in a worker thread: tens of milliseconds per batch, off the event loop.
        buffer = await asyncio.to_thread(_copy_csv, frame)
        await self._copied()  # one COPY at a time on a connection
        self.copying = asyncio.get_running_loop().create_task(
            self._copy(buffer, frame.columns, frame.height)
        )

    async def _copy(self, buffer: io.BytesIO, columns: list[str], rows: int) -> None:
        if self.direct:
            table, schema = self.request.stream, self.schema
        else:
            table, schema = self.staging, None
        status = await self.conn.copy_to_table(
            table, schema_name=schema, source=buffer, columns=columns, format="csv"
        )
        copied = int(status.rsplit(" ", 1)[-1])  # "COPY <rows>"
        if copied != rows:  # never publish a batch that lost rows on the way
            raise ConnectorError(
                CheckCategory.CONNECT,
                f"PostgreSQL took {copied} of {rows} rows of a batch for "
                f"{self.request.stream!r}; nothing was published",
            )

    async def _copied(self) -> None:
        """Wait for the COPY in flight, raising its error."""
        copying, self.copying = self.copying, None
        if copying is not None:
            await copying

    async def publish(self, *, staged: bool) -> None:
        await self._copied()
        if self.direct:
            if self.transaction is not None:  # None: nothing was written, nothing to create
                transaction, self.transaction = self.transaction, None
                await transaction.commit()
            return
        async with self.conn.transaction():
            if self.destination is None:
                if not staged:
                    return  # nothing was written and there is nothing to replace
                assert self.staged_schema is not None
                await self._create_destination(self.staged_schema)
            elif self.request.mode == "replace":
                await self.conn.execute(f"TRUNCATE {self.table_sql}")
            if self.rows_staged:
                await self.conn.execute(self._insert_sql())

    async def _create_destination(self, schema: pl.Schema) -> None:
        await self.conn.execute(
            create_table_sql(self.table_sql, schema, POSTGRES, primary_key=self.new_table_key)
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
        copying, self.copying = self.copying, None
        if copying is not None:
            # Let the COPY in flight end first (without cancelling it); its error, if any, is
            # what made us abort and has been raised already or is of no interest now.
            await asyncio.wait([copying])
            if not copying.cancelled():
                copying.exception()
        if self.direct:
            if self.transaction is not None:  # the created table and its rows go with it
                transaction, self.transaction = self.transaction, None
                await transaction.rollback()
            return
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
            _close_in_background(conn)

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
            columns, query = _read_query(stream, settings.schema, request, cursor)
            # One COPY statement: one snapshot for the whole read, streamed as CSV that
            # Polars parses; the reader holds a bounded amount of it at a time.
            copy = _CopyReader(conn, query, columns, request.batch_size)
            try:
                async for frame in copy.frames():
                    yield frame
            finally:
                if await copy.close():
                    # Abandoned mid-COPY: a graceful close would first have to drain all
                    # the rows the server has left to send. Nothing was written on this
                    # connection, so dropping it loses nothing.
                    conn.terminate()
        finally:
            if not conn.is_closed():
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
