"""Polars dtypes <-> logical types, and how safely one logical type converts into another.

Frames carry Polars dtypes; schemas, mappings and the API speak logical types. This module is
the single place that translates between the two, so that a database table, an API resource
and a CSV file all describe a column the same way.

Canonical dtypes (what `polars_dtype_for` returns when a column must be created or cast):
integer -> Int64, number -> Float64, decimal -> Decimal(38, 9) (or the precision/scale found in
a field's native type), datetime -> Datetime("us", "UTC") (the API speaks UTC), json -> String
holding JSON text (nested Polars values such as List/Struct are also read as json).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum

import polars as pl

from engine.schema.types import Field, LogicalType

UTC = "UTC"
DEFAULT_DECIMAL_PRECISION = 38
DEFAULT_DECIMAL_SCALE = 9

# ISO-8601 layouts tried, in order, when text is parsed into a datetime. Offsets (including
# "Z") are converted to UTC; text without an offset is taken to be UTC already.
_DATETIME_FORMATS_WITH_OFFSET = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
_DATETIME_FORMATS_NAIVE = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
_TRUE_WORDS = ("true", "t", "yes", "y", "1")
_FALSE_WORDS = ("false", "f", "no", "n", "0")


class CastSafety(StrEnum):
    """How a value of one logical type fares when converted to another.

    safe: every value converts without loss; lossy: some values may fail (become null) or lose
    precision; impossible: no meaningful conversion exists.
    """

    SAFE = "safe"
    LOSSY = "lossy"
    IMPOSSIBLE = "impossible"


# --- Polars -> logical ------------------------------------------------------------------------


def logical_from_polars(dtype: pl.DataType | type[pl.DataType]) -> LogicalType:
    """The logical type of a Polars dtype (class or instance)."""
    if dtype == pl.Null:
        return LogicalType.UNKNOWN
    if dtype == pl.Boolean:
        return LogicalType.BOOLEAN
    if dtype.is_integer():
        return LogicalType.INTEGER
    if dtype.is_float():
        return LogicalType.NUMBER
    if dtype.is_decimal():
        return LogicalType.DECIMAL
    return _NON_NUMERIC.get(dtype.base_type(), LogicalType.UNKNOWN)


_NON_NUMERIC: dict[type[pl.DataType], LogicalType] = {
    pl.String: LogicalType.STRING,
    pl.Categorical: LogicalType.STRING,
    pl.Enum: LogicalType.STRING,
    # No logical duration type: ISO-8601 text ("PT1H30M") travels through every destination.
    pl.Duration: LogicalType.STRING,
    pl.Date: LogicalType.DATE,
    pl.Datetime: LogicalType.DATETIME,
    pl.Time: LogicalType.TIME,
    pl.Binary: LogicalType.BINARY,
    pl.List: LogicalType.JSON,
    pl.Array: LogicalType.JSON,
    pl.Struct: LogicalType.JSON,
}


def fields_from_polars(schema: pl.Schema | Mapping[str, pl.DataType]) -> list[Field]:
    """Fields for a Polars schema. A schema says nothing about nulls, so every field is nullable;
    use `fields_from_frame` when the data is at hand."""
    return [
        Field(name=name, type=logical_from_polars(dtype), nullable=True, native_type=str(dtype))
        for name, dtype in schema.items()
    ]


def fields_from_frame(frame: pl.DataFrame) -> list[Field]:
    """Fields for a frame; a column is nullable when it holds at least one null (or no rows)."""
    null_counts = frame.null_count().row(0) if frame.width else ()
    fields = fields_from_polars(frame.schema)
    for field, nulls in zip(fields, null_counts, strict=True):
        field.nullable = nulls > 0 or frame.height == 0
    return fields


# --- logical -> Polars ------------------------------------------------------------------------

_CANONICAL: dict[LogicalType, pl.DataType] = {
    LogicalType.STRING: pl.String(),
    LogicalType.INTEGER: pl.Int64(),
    LogicalType.NUMBER: pl.Float64(),
    LogicalType.DECIMAL: pl.Decimal(DEFAULT_DECIMAL_PRECISION, DEFAULT_DECIMAL_SCALE),
    LogicalType.BOOLEAN: pl.Boolean(),
    LogicalType.DATE: pl.Date(),
    LogicalType.DATETIME: pl.Datetime("us", UTC),
    LogicalType.TIME: pl.Time(),
    LogicalType.BINARY: pl.Binary(),
    LogicalType.JSON: pl.String(),
    LogicalType.UNKNOWN: pl.Null(),
}

# "numeric(12,2)", "DECIMAL(10, 2)", "Decimal(precision=10, scale=2)"
_PRECISION_SCALE = re.compile(r"\(\s*(?:precision=)?(\d+)\s*,\s*(?:scale=)?(\d+)\s*\)")


def polars_dtype_for(logical: LogicalType | str) -> pl.DataType:
    """The canonical Polars dtype for a logical type."""
    return _CANONICAL[LogicalType(logical)]


def dtype_for_field(field: Field) -> pl.DataType:
    """Like `polars_dtype_for`, but keeps a decimal's precision and scale when the field's native
    type states them (so money columns keep their two decimals)."""
    if field.type == LogicalType.DECIMAL and field.native_type:
        match = _PRECISION_SCALE.search(field.native_type)
        if match:
            precision, scale = int(match.group(1)), int(match.group(2))
            if 0 < precision <= DEFAULT_DECIMAL_PRECISION and 0 <= scale <= precision:
                return pl.Decimal(precision, scale)
    return polars_dtype_for(field.type)


# --- cast compatibility -----------------------------------------------------------------------

_T = LogicalType
_SAFE_PAIRS: frozenset[tuple[LogicalType, LogicalType]] = frozenset(
    {
        (_T.INTEGER, _T.NUMBER),  # exact up to 2**53, the conventional widening
        (_T.INTEGER, _T.DECIMAL),
        (_T.BOOLEAN, _T.INTEGER),
        (_T.BOOLEAN, _T.NUMBER),
        (_T.BOOLEAN, _T.DECIMAL),
        (_T.DATE, _T.DATETIME),
        (_T.STRING, _T.BINARY),  # UTF-8 bytes
    }
)
_LOSSY_PAIRS: frozenset[tuple[LogicalType, LogicalType]] = frozenset(
    {
        (_T.NUMBER, _T.INTEGER),
        (_T.NUMBER, _T.DECIMAL),
        (_T.DECIMAL, _T.INTEGER),
        (_T.DECIMAL, _T.NUMBER),
        (_T.INTEGER, _T.BOOLEAN),
        (_T.NUMBER, _T.BOOLEAN),
        (_T.DECIMAL, _T.BOOLEAN),
        (_T.DATETIME, _T.DATE),
        (_T.DATETIME, _T.TIME),
        # Text parses into most types, but any given value may not parse.
        (_T.STRING, _T.INTEGER),
        (_T.STRING, _T.NUMBER),
        (_T.STRING, _T.DECIMAL),
        (_T.STRING, _T.BOOLEAN),
        (_T.STRING, _T.DATE),
        (_T.STRING, _T.DATETIME),
        (_T.STRING, _T.TIME),
        (_T.STRING, _T.JSON),  # kept as text; not validated as JSON
    }
)


def can_cast(source: LogicalType | str, target: LogicalType | str) -> CastSafety:
    """How safely values of `source` convert to `target`.

    Everything converts safely to string (binary as base64, json as JSON text), so "anything ->
    string" counts as a widening. Nothing converts from json except to string. A column of
    unknown type (e.g. all nulls) may hold anything, so converting it is lossy; a target of
    unknown type accepts anything.
    """
    source, target = LogicalType(source), LogicalType(target)
    if source == target or target in (_T.STRING, _T.UNKNOWN):
        return CastSafety.SAFE
    if source == _T.UNKNOWN:
        return CastSafety.LOSSY
    if (source, target) in _SAFE_PAIRS:
        return CastSafety.SAFE
    if (source, target) in _LOSSY_PAIRS:
        return CastSafety.LOSSY
    return CastSafety.IMPOSSIBLE


_NUMERIC_RANK = {_T.INTEGER: 0, _T.DECIMAL: 1, _T.NUMBER: 2}


def common_type(left: LogicalType | str, right: LogicalType | str) -> LogicalType:
    """The narrowest logical type that holds values of both: unknown defers to the other side,
    integer+number -> number, integer+decimal -> decimal, date+datetime -> datetime, json holds
    other non-text values, and anything else meets at string."""
    left, right = LogicalType(left), LogicalType(right)
    if left == right or right == _T.UNKNOWN:
        return left
    if left == _T.UNKNOWN:
        return right
    if left in _NUMERIC_RANK and right in _NUMERIC_RANK:
        return max(left, right, key=_NUMERIC_RANK.__getitem__)
    if {left, right} == {_T.DATE, _T.DATETIME}:
        return _T.DATETIME
    if _T.STRING not in (left, right) and _T.JSON in (left, right):
        return _T.JSON
    return _T.STRING


# --- vectorised conversion --------------------------------------------------------------------


class CastNotPossibleError(ValueError):
    """Raised when asked for a conversion that `can_cast` calls impossible."""


def cast_expr(
    expr: pl.Expr, source: pl.DataType, target: LogicalType | str, dtype: pl.DataType | None = None
) -> pl.Expr:
    """Convert `expr` (whose current dtype is `source`) to the logical `target` type.

    Never raises on data: a value that does not convert becomes null (callers compare null masks
    to find such values). Polars 2 no longer casts text to temporal types or booleans, and cannot
    cast nested values to text, so those conversions are spelled out here. `dtype` overrides the
    canonical target dtype (e.g. a decimal's precision).
    """
    target = LogicalType(target)
    source_logical = logical_from_polars(source)
    if can_cast(source_logical, target) == CastSafety.IMPOSSIBLE:
        raise CastNotPossibleError(f"cannot convert {source_logical} to {target}")
    dtype = dtype if dtype is not None else polars_dtype_for(target)
    if target == _T.UNKNOWN:
        return expr
    if source == pl.Null:
        return expr.cast(dtype)
    if target == _T.JSON:
        return expr  # nested values and JSON text both already read as json
    if target == _T.STRING:
        return expr if source == pl.String else _to_text(expr, source)
    if source_logical == _T.STRING:
        text = expr if source == pl.String else _to_text(expr, source)
        return text.cast(dtype) if target == _T.BINARY else _parse_text(text, target, dtype)
    if source == pl.Boolean and target == _T.DECIMAL:
        return expr.cast(pl.Int8).cast(dtype)  # Polars has no direct boolean -> decimal cast
    if source_logical == _T.DATETIME:
        return _from_datetime(expr, source, target, dtype)
    return expr.cast(dtype, strict=False)


def _to_text(expr: pl.Expr, source: pl.DataType) -> pl.Expr:
    base = source.base_type()
    if base is pl.Struct:
        return pl.when(expr.is_not_null()).then(expr.struct.json_encode())
    if base in (pl.List, pl.Array):
        # Polars only JSON-encodes structs: wrap the list in one and unwrap the text.
        wrapped = pl.struct(expr.alias("v")).struct.json_encode()
        text = wrapped.str.strip_prefix('{"v":').str.strip_suffix("}")
        return pl.when(expr.is_not_null()).then(text)
    if base is pl.Binary:
        return expr.bin.encode("base64")
    if base is pl.Duration:
        return expr.dt.to_string("iso")
    if base is pl.Boolean:
        return pl.when(expr).then(pl.lit("true")).when(~expr).then(pl.lit("false"))
    return expr.cast(pl.String, strict=False)


def _parse_text(expr: pl.Expr, target: LogicalType, dtype: pl.DataType) -> pl.Expr:
    text = expr.str.strip_chars()
    if target == _T.DATE:
        return text.str.to_date("%Y-%m-%d", strict=False)
    if target == _T.TIME:
        return text.str.to_time(strict=False)
    if target == _T.DATETIME:
        return _parse_datetime(text, dtype)
    if target == _T.BOOLEAN:
        words = {w: True for w in _TRUE_WORDS} | {w: False for w in _FALSE_WORDS}
        return text.str.to_lowercase().replace_strict(words, default=None, return_dtype=pl.Boolean)
    return text.cast(dtype, strict=False)


def _parse_datetime(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    unit = getattr(dtype, "time_unit", None) or "us"
    zone = getattr(dtype, "time_zone", None) or UTC
    attempts = [
        text.str.to_datetime(fmt, time_unit=unit, time_zone=UTC, strict=False)
        for fmt in (*_DATETIME_FORMATS_WITH_OFFSET, *_DATETIME_FORMATS_NAIVE)
    ]
    parsed = pl.coalesce(attempts)
    return parsed if zone == UTC else parsed.dt.convert_time_zone(zone)


def _from_datetime(
    expr: pl.Expr, source: pl.DataType, target: LogicalType, dtype: pl.DataType
) -> pl.Expr:
    if target == _T.DATE:
        return expr.dt.date()
    if target == _T.TIME:
        return expr.dt.time()
    if target == _T.DATETIME and getattr(source, "time_zone", None) is None:
        # Naive timestamps are taken to be UTC, the platform's convention.
        return expr.dt.replace_time_zone(UTC).cast(dtype)
    return expr.cast(dtype, strict=False)
