"""Translation between the platform's logical `Field`s and Polars schemas.

Validation builds empty frames from `Field` lists and reads the result back as `Field`s, so
both directions live here and stay symmetrical.
"""

from __future__ import annotations

import polars as pl

from engine.schema import Field, LogicalType

# JSON values are kept whole as their text; unknown types become strings so that a column of
# unknown type can still be carried through a pipeline.
_LOGICAL_TO_POLARS: dict[LogicalType, pl.DataType] = {
    LogicalType.STRING: pl.String(),
    LogicalType.INTEGER: pl.Int64(),
    LogicalType.NUMBER: pl.Float64(),
    LogicalType.DECIMAL: pl.Decimal(38, 9),
    LogicalType.BOOLEAN: pl.Boolean(),
    LogicalType.DATE: pl.Date(),
    LogicalType.DATETIME: pl.Datetime("us"),
    LogicalType.TIME: pl.Time(),
    LogicalType.BINARY: pl.Binary(),
    LogicalType.JSON: pl.String(),
    LogicalType.UNKNOWN: pl.String(),
}


def logical_to_polars(logical: LogicalType | str) -> pl.DataType:
    return _LOGICAL_TO_POLARS[LogicalType(logical)]


def polars_to_logical(dtype: pl.DataType) -> LogicalType:
    if dtype.is_integer():
        return LogicalType.INTEGER
    if dtype.is_float():
        return LogicalType.NUMBER
    if isinstance(dtype, pl.Decimal):
        return LogicalType.DECIMAL
    if isinstance(dtype, pl.Boolean):
        return LogicalType.BOOLEAN
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        return LogicalType.STRING
    if isinstance(dtype, pl.Datetime):
        return LogicalType.DATETIME
    if isinstance(dtype, pl.Date):
        return LogicalType.DATE
    if isinstance(dtype, pl.Time):
        return LogicalType.TIME
    if isinstance(dtype, pl.Binary):
        return LogicalType.BINARY
    if isinstance(dtype, pl.List | pl.Array | pl.Struct | pl.Object):
        return LogicalType.JSON
    return LogicalType.UNKNOWN


def fields_to_schema(fields: list[Field]) -> pl.Schema:
    return pl.Schema({field.name: logical_to_polars(field.type) for field in fields})


def schema_to_fields(schema: pl.Schema | dict[str, pl.DataType]) -> list[Field]:
    return [Field(name=name, type=polars_to_logical(dtype)) for name, dtype in schema.items()]


def empty_frame(fields: list[Field]) -> pl.LazyFrame:
    return pl.LazyFrame(schema=fields_to_schema(fields))
