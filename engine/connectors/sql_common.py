"""What the PostgreSQL, MySQL and SQLite connectors share.

Identifier quoting and staging names, the native → logical type vocabulary, the Polars ⇄ SQL
conversions used by reads and bulk writes, configuration schema fragments, error
categorisation for the connection test, and the staged-writer skeleton whose dialect-specific
steps each connector fills in.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import gc
import re
import socket
import ssl
import time
import uuid
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import polars as pl
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic import BaseModel

from engine.connectors.base import (
    CheckCategory,
    CheckError,
    CheckResult,
    Writer,
    WriteRequest,
    WriteResult,
)
from engine.connectors.errors import ConnectorError
from engine.schema import Field, LogicalType, StreamSchema

DEFAULT_CONNECT_TIMEOUT_S = 10.0
ModelT = TypeVar("ModelT", bound=BaseModel)

# ---------------------------------------------------------------------------------------------
# Identifiers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlDialect:
    name: str
    quote_char: str
    max_identifier_length: int


POSTGRES = SqlDialect("postgres", '"', 63)
MYSQL = SqlDialect("mysql", "`", 64)
SQLITE = SqlDialect("sqlite", '"', 255)

# Staging tables carry this prefix so discovery can hide leftovers of a crashed process.
STAGING_PREFIX = "_da_stg_"


def quote_ident(name: str, dialect: SqlDialect) -> str:
    """Quote an identifier; doubling the quote character is the escape in all three dialects."""
    if not name or "\x00" in name:
        raise ConnectorError(CheckCategory.INVALID_CONFIG, f"Invalid identifier {name!r}")
    quote = dialect.quote_char
    return f"{quote}{name.replace(quote, quote * 2)}{quote}"


def quote_qualified(dialect: SqlDialect, *parts: str | None) -> str:
    return ".".join(quote_ident(part, dialect) for part in parts if part)


def column_list(columns: Iterable[str], dialect: SqlDialect) -> str:
    return ", ".join(quote_ident(column, dialect) for column in columns)


def staging_table_name(table: str, dialect: SqlDialect) -> str:
    """A unique staging name, short enough for the dialect's identifier limit."""
    name = f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}_{table}"
    return name[: dialect.max_identifier_length]


def is_staging_table(name: str) -> bool:
    return name.startswith(STAGING_PREFIX)


# ---------------------------------------------------------------------------------------------
# Native → logical types
# ---------------------------------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",")]


_NATIVE_TO_LOGICAL: dict[str, LogicalType] = {
    **dict.fromkeys(
        _names(
            "smallint, integer, int, bigint, tinyint, mediumint, int2, int4, int8, serial, "
            "bigserial, smallserial, year, oid"
        ),
        LogicalType.INTEGER,
    ),
    **dict.fromkeys(
        _names("real, double precision, double, float, float4, float8"), LogicalType.NUMBER
    ),
    **dict.fromkeys(_names("numeric, decimal, dec, fixed"), LogicalType.DECIMAL),
    **dict.fromkeys(_names("boolean, bool"), LogicalType.BOOLEAN),
    "date": LogicalType.DATE,
    **dict.fromkeys(
        _names(
            "timestamp, timestamp without time zone, timestamp with time zone, timestamptz, "
            "datetime"
        ),
        LogicalType.DATETIME,
    ),
    **dict.fromkeys(_names("time, time without time zone"), LogicalType.TIME),
    # Types without a logical counterpart travel as their text form (timetz: Polars' Time
    # has no zone).
    **dict.fromkeys(
        _names(
            "text, varchar, character varying, char, character, bpchar, name, tinytext, "
            "mediumtext, longtext, nchar, nvarchar, national char, enum, set, uuid, citext, "
            "inet, cidr, macaddr, macaddr8, money, interval, xml, time with time zone, timetz, "
            "clob, string, tsvector, tsquery, inet4, inet6"
        ),
        LogicalType.STRING,
    ),
    **dict.fromkeys(
        _names(
            "bytea, blob, tinyblob, mediumblob, longblob, binary, varbinary, bit, geometry, "
            "point, linestring, polygon, multipoint, multilinestring, multipolygon, "
            "geometrycollection"
        ),
        LogicalType.BINARY,
    ),
    **dict.fromkeys(_names("json, jsonb, composite"), LogicalType.JSON),
}

# Where a dialect gives a shared name another meaning.
_DIALECT_TYPES: dict[str, dict[str, LogicalType]] = {
    # PostgreSQL bit strings, geometry and ranges have no logical counterpart: they travel
    # as their text form ('101', '(1,2)', '[1,5)').
    "postgres": dict.fromkeys(
        _names(
            "bit, bit varying, varbit, point, line, lseg, box, path, polygon, circle, "
            "int4range, int8range, numrange, tsrange, tstzrange, daterange, int4multirange, "
            "int8multirange, nummultirange, tsmultirange, tstzmultirange, datemultirange"
        ),
        LogicalType.STRING,
    ),
}

_TYPE_PARAMS = re.compile(r"\([^)]*\)")
_TYPE_MODIFIERS = re.compile(r"\b(unsigned|signed|zerofill)\b")
_ONE_BIT_TYPES = re.compile(r"(tinyint|bit)\s*\(\s*1\s*\)(\s+unsigned)?")


def normalize_native_type(native: str) -> str:
    """`Timestamp(3) With Time Zone` → `timestamp with time zone`; `INT(11) UNSIGNED` → `int`."""
    text = _TYPE_MODIFIERS.sub("", _TYPE_PARAMS.sub("", native.lower()))
    return " ".join(text.split())


@functools.lru_cache(maxsize=4096)
def logical_type_for(native: str | None, dialect: SqlDialect) -> LogicalType:
    """Map a dialect's native column type onto the logical vocabulary.

    Cached: a database has few distinct type spellings but may have many columns."""
    if not native:
        return LogicalType.UNKNOWN
    lowered = native.strip().lower()
    if dialect is POSTGRES and lowered.endswith("]"):  # arrays are kept whole, like JSON
        return LogicalType.JSON
    if dialect is MYSQL:
        if _ONE_BIT_TYPES.fullmatch(lowered):  # MySQL's spelling of a boolean
            return LogicalType.BOOLEAN
        if lowered.startswith(("enum", "set")):  # enum('a','b') lists its values
            return LogicalType.STRING
    base = normalize_native_type(lowered)
    known = _DIALECT_TYPES.get(dialect.name, {}).get(base) or _NATIVE_TO_LOGICAL.get(base)
    if known is not None:
        return known
    # SQLite takes any type name and decides by affinity; elsewhere an unknown type (an
    # extension's, say) is read as text.
    return _logical_type_by_affinity(base) if dialect is SQLITE else LogicalType.UNKNOWN


def _logical_type_by_affinity(base: str) -> LogicalType:
    """SQLite accepts any declared type name: fall back on its affinity rules plus the names
    people commonly declare (DATETIME, BOOLEAN, JSON...)."""
    if "bool" in base:
        return LogicalType.BOOLEAN
    if "json" in base:
        return LogicalType.JSON
    if "datetime" in base or "timestamp" in base:
        return LogicalType.DATETIME
    if "date" in base:
        return LogicalType.DATE
    if "time" in base:
        return LogicalType.TIME
    if "int" in base:
        return LogicalType.INTEGER
    if any(token in base for token in ("char", "clob", "text")):
        return LogicalType.STRING
    if "blob" in base or "binary" in base:
        return LogicalType.BINARY
    if any(token in base for token in ("real", "floa", "doub")):
        return LogicalType.NUMBER
    if "dec" in base or "num" in base:
        return LogicalType.DECIMAL
    return LogicalType.UNKNOWN


def is_unsigned_bigint(native: str) -> bool:
    lowered = native.lower()
    return "unsigned" in lowered and normalize_native_type(lowered) == "bigint"


def is_tz_aware(native: str) -> bool:
    lowered = native.lower()
    return "with time zone" in lowered or lowered in {"timestamptz", "timetz"}


_DECIMAL_PARAMS = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
POLARS_MAX_DECIMAL_PRECISION = 38


def polars_decimal_for(native: str) -> pl.DataType | None:
    """Decimal(p, s) when the column declares a precision Polars can hold; None = infer."""
    match = _DECIMAL_PARAMS.search(native)
    if not match:
        return None
    precision, scale = int(match.group(1)), int(match.group(2) or 0)
    if precision > POLARS_MAX_DECIMAL_PRECISION:
        return None
    return pl.Decimal(precision, scale)


def polars_dtype_for(logical: LogicalType, native: str) -> pl.DataType | None:
    """The Polars dtype a column is read into; None lets Polars infer from the values."""
    match logical:
        case LogicalType.INTEGER:
            return pl.UInt64() if is_unsigned_bigint(native) else pl.Int64()
        case LogicalType.NUMBER:
            return pl.Float64()
        case LogicalType.DECIMAL:
            return polars_decimal_for(native)
        case LogicalType.BOOLEAN:
            return pl.Boolean()
        case LogicalType.DATE:
            return pl.Date()
        case LogicalType.DATETIME:
            return pl.Datetime("us", "UTC") if is_tz_aware(native) else pl.Datetime("us")
        case LogicalType.TIME:
            return pl.Time()
        case LogicalType.BINARY:
            return pl.Binary()
        case _:
            return pl.String()


_object_new = object.__new__
_object_setattr = object.__setattr__


def trusted_model(model: type[ModelT], **values: Any) -> ModelT:
    """Build a pydantic model from values that are already exactly its field types.

    What `model_construct` does when every field is given, without its per-call bookkeeping
    (several times faster): discovery builds tens of thousands of fields from catalog rows.
    The tests compare such models with validated ones.
    """
    instance = _object_new(model)
    _object_setattr(instance, "__dict__", values)
    _object_setattr(instance, "__pydantic_fields_set__", set(values))
    _object_setattr(instance, "__pydantic_extra__", None)
    _object_setattr(instance, "__pydantic_private__", None)
    return instance


# Every discovered field sets all its fields, so they can share one fields-set: pydantic only
# ever adds names to it (on assignment), and they are all in it already. Copying it per field
# costs as much as the rest of the construction.
_ALL_FIELD_NAMES_SET = set(Field.model_fields)


def make_field(
    name: str,
    native: str,
    nullable: bool,
    primary_key: bool,
    dialect: SqlDialect,
    mapped_from: str | None = None,
) -> Field:
    """A discovered column. `mapped_from` names the type to map when it differs from the
    declared one (a PostgreSQL domain maps as its base type).

    `trusted_model` spelled out: this runs once per column of a whole database."""
    field = _object_new(Field)
    _object_setattr(
        field,
        "__dict__",
        {
            "name": name,
            "type": logical_type_for(mapped_from or native, dialect),
            "nullable": nullable,
            "native_type": native,
            "primary_key": primary_key,
        },
    )
    _object_setattr(field, "__pydantic_fields_set__", _ALL_FIELD_NAMES_SET)
    _object_setattr(field, "__pydantic_extra__", None)
    _object_setattr(field, "__pydantic_private__", None)
    return field


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects are allocated at once.

    Allocating tens of thousands of rows and models triggers collections that walk the whole
    heap of a large process, to find no cycles. Keep the section short (milliseconds): other
    tasks running meanwhile merely see their cycle collection deferred to its end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------
# Reading: driver rows → Polars frames
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnPlan:
    """How one column is selected and turned into a Polars series."""

    name: str
    select_sql: str
    dtype: pl.DataType | None
    # Applied to the built series, for values the driver returns in another shape
    # (e.g. MySQL TIME as timedelta, SQLite dates as text).
    finish: Callable[[pl.Series], pl.Series] | None = None


# Polars raises some conversion failures as a Rust panic, which is a BaseException.
_SERIES_ERRORS = (Exception, pl.exceptions.PanicException)


def series_from_values(plan: ColumnPlan, values: Sequence[Any]) -> pl.Series:
    try:
        series = pl.Series(plan.name, values, dtype=plan.dtype, strict=False)
    except _SERIES_ERRORS:
        # Values the dtype cannot hold (NaN numerics, precision beyond Polars' limits):
        # keep them readable as text rather than failing the whole read.
        series = pl.Series(
            plan.name, [None if v is None else str(v) for v in values], dtype=pl.String
        )
        return series
    return plan.finish(series) if plan.finish else series


def frame_from_rows(rows: Sequence[Sequence[Any]], plans: Sequence[ColumnPlan]) -> pl.DataFrame:
    """Build a frame column-wise: one transpose in C (zip), then one series per column."""
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * len(plans)
    return pl.DataFrame([series_from_values(p, v) for p, v in zip(plans, columns, strict=True)])


def empty_frame(plans: Sequence[ColumnPlan]) -> pl.DataFrame:
    return frame_from_rows([], plans)


def duration_to_time(series: pl.Series) -> pl.Series:
    """MySQL TIME arrives as timedelta (Polars cannot cast Duration to Time directly). TIME is
    really an interval: values outside a day (negative, or 24 h and more) become null."""
    nanos = series.cast(pl.Duration("ns")).cast(pl.Int64)
    in_a_day = nanos.is_between(0, 86_400 * 10**9, closed="left")
    return nanos.zip_with(in_a_day, pl.Series([None], dtype=pl.Int64)).cast(pl.Time)


def text_to_temporal(dtype: pl.DataType) -> Callable[[pl.Series], pl.Series]:
    """SQLite keeps dates as ISO text: parse it, with or without fractional seconds and with
    either date/time separator. Text that is not a date becomes null rather than an error."""

    def parse(series: pl.Series) -> pl.Series:
        if series.dtype != pl.String:
            return series
        if dtype == pl.Date:
            return series.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        if dtype == pl.Time:
            return series.str.to_time("%H:%M:%S%.f", strict=False)
        iso = series.str.replace("T", " ", literal=True)
        return iso.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False)

    return parse


def cursor_param_text(value: Any) -> str:
    """A state cursor as text the database can cast back to the column's type."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class SelectQuery:
    """A read query with its placeholders already in the dialect's style."""

    sql: str
    params: list[Any]


def build_select(
    table_sql: str,
    plans: Sequence[ColumnPlan],
    *,
    cursor_sql: str | None,
    cursor_placeholder: str | None,
    cursor_value: Any,
    limit: int | None,
) -> SelectQuery:
    parts = [f"SELECT {', '.join(p.select_sql for p in plans)} FROM {table_sql}"]
    params: list[Any] = []
    if cursor_sql is not None:
        if cursor_value is not None:
            parts.append(f"WHERE {cursor_sql} > {cursor_placeholder}")
            params.append(cursor_value)
        parts.append(f"ORDER BY {cursor_sql}")
    if limit is not None:
        parts.append(f"LIMIT {int(limit)}")
    return SelectQuery(" ".join(parts), params)


def validate_read_request(
    fields: Sequence[Field], sync_mode: str, cursor_field: str | None, stream: str
) -> str | None:
    """The cursor column for an incremental read (None for full refresh)."""
    if sync_mode != "incremental":
        return None
    if not cursor_field:
        raise ConnectorError(
            CheckCategory.INVALID_CONFIG,
            f"Incremental reads of {stream!r} need a cursor field (e.g. updated_at or id)",
        )
    if cursor_field not in {f.name for f in fields}:
        raise ConnectorError(
            CheckCategory.INVALID_CONFIG,
            f"Cursor field {cursor_field!r} is not a column of {stream!r}",
        )
    return cursor_field


def stream_not_found(stream: str, where: str) -> ConnectorError:
    return ConnectorError(
        CheckCategory.NOT_FOUND,
        f"Table or view {stream!r} does not exist in {where}; run discovery to see what exists",
    )


# ---------------------------------------------------------------------------------------------
# Writing: Polars frames → SQL
# ---------------------------------------------------------------------------------------------


def dtype_kind(dtype: pl.DataType) -> str:
    """A coarse name for a Polars dtype, the key of each dialect's DDL table."""
    if dtype.is_integer():
        return str(dtype).lower()  # int8 … uint64
    if dtype == pl.Float32:
        return "float32"
    if dtype.is_float():
        return "float64"
    if isinstance(dtype, pl.Decimal):
        return "decimal"
    if dtype == pl.Boolean:
        return "bool"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "datetime_tz" if dtype.time_zone else "datetime"
    if dtype == pl.Time:
        return "time"
    if isinstance(dtype, pl.Duration):
        return "duration"
    if dtype == pl.Binary:
        return "binary"
    if dtype.is_nested():
        return "json"
    return "string"


_DDL_TYPES: dict[str, dict[str, str]] = {
    "postgres": {
        "int8": "smallint",
        "int16": "smallint",
        "int32": "integer",
        "int64": "bigint",
        "int128": "numeric(39,0)",
        "uint8": "smallint",
        "uint16": "integer",
        "uint32": "bigint",
        "uint64": "numeric(20,0)",
        "float32": "real",
        "float64": "double precision",
        "bool": "boolean",
        "date": "date",
        "datetime": "timestamp",
        "datetime_tz": "timestamptz",
        "time": "time",
        "duration": "interval",
        "binary": "bytea",
        "json": "jsonb",
        "string": "text",
    },
    "mysql": {
        "int8": "TINYINT",
        "int16": "SMALLINT",
        "int32": "INT",
        "int64": "BIGINT",
        "int128": "DECIMAL(39,0)",
        "uint8": "TINYINT UNSIGNED",
        "uint16": "SMALLINT UNSIGNED",
        "uint32": "INT UNSIGNED",
        "uint64": "BIGINT UNSIGNED",
        "float32": "FLOAT",
        "float64": "DOUBLE",
        "bool": "BOOLEAN",
        "date": "DATE",
        "datetime": "DATETIME(6)",
        "datetime_tz": "DATETIME(6)",
        "time": "TIME(6)",
        "duration": "BIGINT",
        "binary": "LONGBLOB",
        "json": "JSON",
        "string": "LONGTEXT",
    },
    "sqlite": {
        "float32": "REAL",
        "float64": "REAL",
        "bool": "BOOLEAN",
        "date": "DATE",
        "datetime": "DATETIME",
        "datetime_tz": "DATETIME",
        "time": "TIME",
        "duration": "INTEGER",
        "binary": "BLOB",
        "json": "JSON",
        "string": "TEXT",
    },
}

# MySQL cannot index TEXT/BLOB without a prefix length, so key columns get bounded types.
_MYSQL_KEY_TYPES = {"string": "VARCHAR(255)", "binary": "VARBINARY(255)", "json": "VARCHAR(255)"}
_MAX_DECIMAL_PRECISION = {"postgres": 1000, "mysql": 65, "sqlite": 1000}


def ddl_type_for(dtype: pl.DataType, dialect: SqlDialect, *, key: bool = False) -> str:
    kind = dtype_kind(dtype)
    if kind == "decimal":
        precision = min(dtype.precision or 38, _MAX_DECIMAL_PRECISION[dialect.name])  # type: ignore[attr-defined]
        scale = min(dtype.scale or 0, precision)  # type: ignore[attr-defined]
        return f"{'NUMERIC' if dialect is not MYSQL else 'DECIMAL'}({precision},{scale})"
    if dialect is MYSQL and key and kind in _MYSQL_KEY_TYPES:
        return _MYSQL_KEY_TYPES[kind]
    if dialect is SQLITE and kind.startswith(("int", "uint")):
        return "INTEGER"
    types = _DDL_TYPES[dialect.name]
    return types.get(kind, types["string"])  # a dtype without a column type is stored as text


def create_table_sql(
    table_sql: str,
    schema: pl.Schema,
    dialect: SqlDialect,
    *,
    primary_key: Sequence[str] = (),
    temporary: bool = False,
) -> str:
    """CREATE TABLE for a frame's schema; the primary key columns are made NOT NULL."""
    keys = set(primary_key)
    columns = [
        f"{quote_ident(name, dialect)} {ddl_type_for(dtype, dialect, key=name in keys)}"
        + (" NOT NULL" if name in keys else "")
        for name, dtype in schema.items()
    ]
    if primary_key:
        columns.append(f"PRIMARY KEY ({column_list(primary_key, dialect)})")
    kind = "TEMPORARY TABLE" if temporary else "TABLE"
    return f"CREATE {kind} {table_sql} ({', '.join(columns)})"


def _json_text(name: str) -> pl.Expr:
    """Lists and structs as JSON text, vectorised: encode {"v": value}, then strip the wrapper."""
    wrapped = pl.struct(pl.col(name).alias("v")).struct.json_encode()
    unwrapped = wrapped.str.slice(5, wrapped.str.len_chars() - 6)
    return pl.when(pl.col(name).is_null()).then(None).otherwise(unwrapped).alias(name)


def _as_string(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).alias(name)


def _conversions(
    frame: pl.DataFrame, convert: Callable[[str, str], pl.Expr | None]
) -> pl.DataFrame:
    exprs = [
        expr
        for name, dtype in frame.schema.items()
        if (expr := convert(name, dtype_kind(dtype))) is not None
    ]
    return frame.with_columns(exprs) if exprs else frame


def _text_fallback(name: str, frame: pl.DataFrame) -> pl.Expr | None:
    """Null, categorical, enum and object columns travel as text."""
    dtype = frame.schema[name]
    if dtype in (pl.String, pl.Binary) or dtype_kind(dtype) != "string":
        return None
    return _as_string(name)


def frame_for_postgres_csv(frame: pl.DataFrame) -> pl.DataFrame:
    """Make every column something `write_csv` emits and PostgreSQL's COPY parses."""

    def convert(name: str, kind: str) -> pl.Expr | None:
        col = pl.col(name)
        if kind == "json":
            return _json_text(name)
        if kind == "binary":  # bytea hex input format
            return pl.concat_str(pl.lit("\\x"), col.bin.encode("hex")).alias(name)
        if kind == "duration":
            micros = col.dt.total_microseconds().cast(pl.String)
            return pl.concat_str(micros, pl.lit(" microseconds")).alias(name)
        return _text_fallback(name, frame)

    return _conversions(frame, convert)


# SQLite's datetime() layout (space separator) plus microseconds.
SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S%.6f"


def frame_for_driver(frame: pl.DataFrame, dialect: SqlDialect) -> pl.DataFrame:
    """Make every column a type the MySQL / SQLite driver can bind as a parameter."""
    to_text = dialect is SQLITE  # sqlite3 binds only int/float/str/bytes/None

    def convert(name: str, kind: str) -> pl.Expr | None:
        col = pl.col(name)
        if kind == "json":
            return _json_text(name)
        if kind == "duration":
            return col.dt.total_microseconds().alias(name)
        if kind == "datetime_tz":
            utc = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            return (
                utc.dt.strftime("%Y-%m-%d %H:%M:%S%.6f").alias(name) if to_text else utc.alias(name)
            )
        if to_text and kind == "datetime":
            return col.dt.strftime("%Y-%m-%d %H:%M:%S%.6f").alias(name)
        if to_text and kind in ("date", "time", "decimal"):
            return _as_string(name)
        return _text_fallback(name, frame)

    return _conversions(frame, convert)


def frame_to_rows(frame: pl.DataFrame, dialect: SqlDialect) -> list[tuple[Any, ...]]:
    """Driver-ready parameter tuples; the Python objects are made by Polars in Rust."""
    return frame_for_driver(frame, dialect).rows()


def placeholders(count: int, marker: str) -> str:
    return f"({', '.join([marker] * count)})"


def check_write_columns(
    frame_columns: Sequence[str], table_columns: Sequence[str], table: str
) -> None:
    unknown = [c for c in frame_columns if c not in set(table_columns)]
    if unknown:
        raise ConnectorError(
            CheckCategory.INVALID_CONFIG,
            f"Column(s) {', '.join(unknown)} do not exist in destination table {table!r}; "
            "map or drop them before the destination",
        )


def upsert_key(request: WriteRequest, table_primary_key: Sequence[str]) -> list[str]:
    """The key an upsert matches on: the request's, else the destination's primary key."""
    key = list(request.primary_key) or list(table_primary_key)
    if not key:
        raise ConnectorError(
            CheckCategory.INVALID_CONFIG,
            f"Upsert into {request.stream!r} needs a primary key: set one on the destination "
            "or in the write settings",
        )
    return key


class StagedSqlWriter(Writer):
    """Batches land in a staging table; `commit` publishes in one transaction; `abort` drops
    the staging table. This class keeps the bookkeeping and the checks every dialect shares;
    subclasses supply the SQL of each step."""

    def __init__(self, request: WriteRequest, destination: StreamSchema | None) -> None:
        self.request = request
        self.destination = destination  # None: the table is created at commit
        destination_key = (
            [f.name for f in destination.fields if f.primary_key] if destination else []
        )
        self.key = upsert_key(request, destination_key) if request.mode == "upsert" else []
        self.rows_staged = 0
        self.staged_schema: pl.Schema | None = None  # the first batch's, once staging exists
        self.staging_columns: list[str] = []
        self.columns_loaded: list[str] = []  # what publish copies, in first-seen order
        self._finished = False

    @property
    def new_table_key(self) -> list[str]:
        """The primary key of a destination this writer creates."""
        return self.key or list(self.request.primary_key)

    async def write_batch(self, frame: pl.DataFrame) -> None:
        if self._finished:
            raise RuntimeError("writer is already committed or aborted")
        try:
            if self.staged_schema is None:
                await self._start_staging(frame.schema)
            check_write_columns(frame.columns, self.staging_columns, self.request.stream)
            if frame.height:
                await self.load_batch(frame)
                self.rows_staged += frame.height
                self.columns_loaded += [c for c in frame.columns if c not in self.columns_loaded]
        except BaseException:
            await self.abort()
            raise

    async def _start_staging(self, schema: pl.Schema) -> None:
        if self.destination is not None:
            self.staging_columns = [f.name for f in self.destination.fields]
        else:
            self.staging_columns = schema.names()
        check_write_columns(schema.names(), self.staging_columns, self.request.stream)
        missing_key = [c for c in self.key if c not in schema.names()]
        if missing_key:
            raise ConnectorError(
                CheckCategory.INVALID_CONFIG,
                f"Upsert into {self.request.stream!r} needs the key column(s) "
                f"{', '.join(missing_key)} in every batch",
            )
        await self.create_staging(schema)
        self.staged_schema = schema

    async def commit(self) -> WriteResult:
        if self._finished:
            raise RuntimeError("writer is already committed or aborted")
        try:
            await self.publish(staged=self.staged_schema is not None)
        finally:
            await self.abort()
        return WriteResult(rows_written=self.rows_staged, stream=self.request.stream)

    async def abort(self) -> None:
        """Safe to call more than once, and after a failed commit."""
        if self._finished:
            return
        self._finished = True
        try:
            if self.staged_schema is not None:
                # A dead connection takes temporary staging tables with it; never let a
                # failed clean-up hide the error that made us abort.
                with contextlib.suppress(Exception):
                    await self.drop_staging()
        finally:
            await self.close()

    @abstractmethod
    async def create_staging(self, schema: pl.Schema) -> None:
        """Create the staging table: like the destination, or from the first batch's schema
        when there is no destination yet."""

    @abstractmethod
    async def load_batch(self, frame: pl.DataFrame) -> None: ...

    @abstractmethod
    async def publish(self, *, staged: bool) -> None:
        """Move staged rows into the destination atomically (replace with nothing staged
        empties it)."""

    @abstractmethod
    async def drop_staging(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def network_properties(default_port: int, default_user: str) -> dict[str, dict[str, Any]]:
    """Host, port, database, user, password and timeout: the same for every network database."""
    return {
        "host": {
            "type": "string",
            "title": "Host",
            "description": "Server host name or IP address, as reachable from this platform.",
            "minLength": 1,
            "examples": ["db.example.com", "10.0.0.12"],
        },
        "port": {
            "type": "integer",
            "title": "Port",
            "description": "TCP port the server listens on.",
            "minimum": 1,
            "maximum": 65535,
            "default": default_port,
            "examples": [default_port],
        },
        "database": {
            "type": "string",
            "title": "Database",
            "description": "Name of the database to connect to.",
            "minLength": 1,
            "examples": ["analytics"],
        },
        "user": {
            "type": "string",
            "title": "User",
            "description": "Database user; read access is enough for a source, a destination "
            "also needs CREATE, INSERT and DELETE.",
            "minLength": 1,
            "default": default_user,
            "examples": ["reporting"],
        },
        "password": {
            "type": "string",
            "title": "Password",
            "description": "Password of the user. Stored encrypted and never shown again.",
            "writeOnly": True,
            "format": "password",
            "default": "",
        },
        "connect_timeout": {
            "type": "number",
            "title": "Connect timeout (s)",
            "description": "How long to wait for the server before giving up.",
            "exclusiveMinimum": 0,
            "maximum": 300,
            "default": DEFAULT_CONNECT_TIMEOUT_S,
            "examples": [10],
        },
    }


TLS_MODES_DESCRIPTION = (
    "disable: plain TCP. prefer: TLS when the server offers it. require: always TLS, "
    "certificate not checked. verify-ca: TLS with a certificate signed by a trusted CA. "
    "verify-full: verify-ca and the certificate must name the host."
)


def tls_properties(field_name: str, modes: list[str], default: str) -> dict[str, dict[str, Any]]:
    return {
        field_name: {
            "type": "string",
            "title": "TLS mode",
            "description": TLS_MODES_DESCRIPTION,
            "enum": modes,
            "default": default,
        },
        "tls_ca_cert": {
            "type": "string",
            "title": "CA certificate (PEM)",
            "description": "Certificate of the CA that signed the server's certificate, for "
            "verify-ca / verify-full. Empty: the system's trusted CAs.",
            "examples": ["-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----"],
        },
    }


def object_schema(
    title: str, properties: dict[str, dict[str, Any]], required: list[str]
) -> dict[str, Any]:
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "title": title,
        "required": required,
        "properties": properties,
    }


def grouped_ui_schema(groups: dict[str, list[str]], widgets: dict[str, dict[str, Any]]) -> dict:
    """`ui:order` follows the groups; groups themselves ride in `ui:options` for the form."""
    order = [name for fields in groups.values() for name in fields]
    return {
        "ui:order": [*order, "*"],
        "ui:options": {
            "groups": [{"title": title, "fields": fields} for title, fields in groups.items()]
        },
        **widgets,
    }


NETWORK_WIDGETS: dict[str, dict[str, Any]] = {
    "host": {"ui:autofocus": True, "ui:placeholder": "db.example.com"},
    "password": {"ui:widget": "password"},
    "tls_ca_cert": {"ui:widget": "textarea", "ui:options": {"rows": 4}},
    "connect_timeout": {"ui:widget": "updown"},
}


def validated_config(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The config with defaults filled in, or ConnectorError(invalid_config) with a pointer.

    Null values count as absent: forms send null for fields left empty."""
    present = {key: value for key, value in config.items() if value is not None}
    error = best_match(Draft202012Validator(schema).iter_errors(present))
    if error is not None:
        pointer = "".join(f"/{part}" for part in error.path)
        message = error.message
        if error.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", error.message)
            if missing:
                pointer = f"{pointer}/{missing[0]}"
                message = f"{schema['properties'][missing[0]].get('title', missing[0])} is required"
        raise ConnectorError(CheckCategory.INVALID_CONFIG, message, pointer or None)
    defaults = {
        name: prop["default"] for name, prop in schema["properties"].items() if "default" in prop
    }
    return defaults | present


@dataclass(frozen=True)
class NetworkSettings:
    host: str
    port: int
    database: str
    user: str
    password: str
    connect_timeout: float
    tls_mode: str
    tls_ca_cert: str | None

    @classmethod
    def from_config(cls, config: dict[str, Any], tls_field: str) -> NetworkSettings:
        return cls(
            host=config["host"],
            port=int(config["port"]),
            database=config["database"],
            user=config["user"],
            password=config.get("password") or "",
            connect_timeout=float(config["connect_timeout"]),
            tls_mode=config[tls_field],
            tls_ca_cert=config.get("tls_ca_cert") or None,
        )


# ---------------------------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------------------------


class _PinnedHostnameContext(ssl.SSLContext):
    """Checks the certificate against the configured host name even though we connect to the
    address the SSRF guard resolved (drivers pass the connect address as server_hostname)."""

    expected_hostname: str

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):  # type: ignore[override]
        return super().wrap_bio(incoming, outgoing, server_side, self.expected_hostname, session)


def client_ssl_context(mode: str, ca_pem: str | None, hostname: str) -> ssl.SSLContext:
    """An SSL context for require / verify-ca / verify-full."""
    context = _PinnedHostnameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.expected_hostname = hostname
    if mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    else:
        context.load_default_certs()
    context.check_hostname = mode == "verify-full"
    return context


# ---------------------------------------------------------------------------------------------
# Connection test
# ---------------------------------------------------------------------------------------------

_ERRNO = re.compile(r"\[Errno (-?\d+)\]")


def categorize_network_error(
    exc: BaseException, host: str, port: int, timeout: float, tls_field: str
) -> ConnectorError:
    """Failures every driver shares: name resolution, refused ports, silence, TLS."""
    where = f"{host}:{port}"
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ConnectorError(
            CheckCategory.TIMEOUT,
            f"No answer from {where} within {timeout:g} s. Check that host and port point at "
            "the database (not another service), that a firewall lets this platform through, "
            "or raise the connect timeout.",
            "/connect_timeout",
        )
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return ConnectorError(
            CheckCategory.TLS,
            f"TLS handshake with {where} failed: {exc}. Check the TLS mode and CA certificate.",
            f"/{tls_field}",
        )
    if isinstance(exc, socket.gaierror) or _errno_of(exc) in _DNS_ERRNOS:
        return ConnectorError(
            CheckCategory.DNS,
            f"Host name {host!r} could not be resolved. Check its spelling, or use an IP.",
            "/host",
        )
    if isinstance(exc, ConnectionRefusedError) or _errno_of(exc) == 111:
        return ConnectorError(
            CheckCategory.CONNECT,
            f"Connection to {where} was refused: nothing listens there. Check the port and "
            "that the server accepts TCP connections.",
            "/port",
        )
    if isinstance(exc, OSError) or _errno_of(exc) is not None:
        return ConnectorError(
            CheckCategory.CONNECT,
            f"Could not connect to {where}: {exc}. Check host, port and network access.",
            "/host",
        )
    return ConnectorError(CheckCategory.CONNECT, f"Could not connect to {where}: {exc}", None)


_DNS_ERRNOS = {-2, -3, -5, -9}  # EAI_NONAME, EAI_AGAIN, EAI_NODATA, EAI_ADDRFAMILY


def _errno_of(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    match = _ERRNO.search(str(exc))
    return int(match.group(1)) if match else None


async def run_check(
    probe: Callable[[], Awaitable[None]],
    categorize: Callable[[BaseException], ConnectorError],
    deadline_s: float,
) -> CheckResult:
    """Run a connection probe under an overall deadline and report a categorised result."""
    started = time.perf_counter()
    error: CheckError | None = None
    try:
        # The drivers time out the connect themselves; this bounds everything after it too.
        await asyncio.wait_for(probe(), deadline_s * 2)
    except Exception as exc:
        error = categorize(exc).to_check_error()
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return CheckResult(ok=error is None, latency_ms=latency_ms, error=error)


def check_failure(exc: ConnectorError) -> CheckResult:
    """A connection test that failed before reaching the network (bad configuration)."""
    return CheckResult(ok=False, latency_ms=0.0, error=exc.to_check_error())
