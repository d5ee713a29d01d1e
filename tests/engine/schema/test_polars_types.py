"""Polars dtypes and logical types: one vocabulary for every source, and honest cast verdicts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from engine.schema import (
    CastNotPossibleError,
    CastSafety,
    Field,
    LogicalType,
    can_cast,
    cast_expr,
    common_type,
    dtype_for_field,
    fields_from_frame,
    fields_from_polars,
    logical_from_polars,
    polars_dtype_for,
)

T = LogicalType


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (pl.Int8, T.INTEGER),
        (pl.UInt64(), T.INTEGER),
        (pl.Float32, T.NUMBER),
        (pl.Float64(), T.NUMBER),
        (pl.Decimal(10, 2), T.DECIMAL),
        (pl.Boolean, T.BOOLEAN),
        (pl.String, T.STRING),
        (pl.Categorical(), T.STRING),
        (pl.Enum(["a", "b"]), T.STRING),
        (pl.Duration("us"), T.STRING),
        (pl.Date, T.DATE),
        (pl.Datetime("ms"), T.DATETIME),
        (pl.Datetime("us", "Europe/Paris"), T.DATETIME),
        (pl.Time, T.TIME),
        (pl.Binary, T.BINARY),
        (pl.List(pl.Int64), T.JSON),
        (pl.Array(pl.Int64, 3), T.JSON),
        (pl.Struct({"a": pl.Int64}), T.JSON),
        (pl.Null, T.UNKNOWN),
    ],
)
def test_every_polars_dtype_has_a_logical_type(dtype, expected):
    assert logical_from_polars(dtype) == expected


@pytest.mark.parametrize("logical", [t for t in LogicalType if t != T.JSON])
def test_canonical_dtype_reads_back_as_the_same_logical_type(logical):
    assert logical_from_polars(polars_dtype_for(logical)) == logical


def test_json_travels_as_text_which_a_bare_dtype_cannot_tell_from_a_string():
    assert polars_dtype_for(T.JSON) == pl.String
    assert logical_from_polars(pl.String) == T.STRING


def test_canonical_datetime_is_utc_and_decimal_has_room():
    assert polars_dtype_for("datetime") == pl.Datetime("us", "UTC")
    assert polars_dtype_for(T.DECIMAL) == pl.Decimal(38, 9)


def test_decimal_fields_keep_precision_and_scale_from_their_native_type():
    money = Field(name="price", type=T.DECIMAL, native_type="numeric(12,2)")
    assert dtype_for_field(money) == pl.Decimal(12, 2)
    polars_native = Field(name="p", type=T.DECIMAL, native_type="Decimal(precision=10, scale=4)")
    assert dtype_for_field(polars_native) == pl.Decimal(10, 4)
    assert dtype_for_field(Field(name="n", type=T.DECIMAL)) == pl.Decimal(38, 9)


def test_fields_from_polars_keeps_order_names_and_native_types():
    schema = pl.Schema({"id": pl.Int32, "tags": pl.List(pl.String), "at": pl.Datetime("us")})
    fields = fields_from_polars(schema)
    assert [(f.name, f.type, f.nullable) for f in fields] == [
        ("id", T.INTEGER, True),
        ("tags", T.JSON, True),
        ("at", T.DATETIME, True),
    ]
    assert fields[0].native_type == "Int32"


def test_fields_from_frame_knows_which_columns_hold_nulls():
    frame = pl.DataFrame({"id": [1, 2], "note": ["x", None]})
    nullable = {f.name: f.nullable for f in fields_from_frame(frame)}
    assert nullable == {"id": False, "note": True}


@pytest.mark.parametrize(
    ("source", "target", "verdict"),
    [
        (T.INTEGER, T.INTEGER, "safe"),
        (T.INTEGER, T.NUMBER, "safe"),
        (T.INTEGER, T.DECIMAL, "safe"),
        (T.DATE, T.DATETIME, "safe"),
        (T.NUMBER, T.STRING, "safe"),
        (T.JSON, T.STRING, "safe"),
        (T.NUMBER, T.INTEGER, "lossy"),
        (T.DATETIME, T.DATE, "lossy"),
        (T.STRING, T.INTEGER, "lossy"),
        (T.STRING, T.DATE, "lossy"),
        (T.UNKNOWN, T.INTEGER, "lossy"),
        (T.JSON, T.INTEGER, "impossible"),
        (T.DATE, T.TIME, "impossible"),
        (T.BINARY, T.NUMBER, "impossible"),
        (T.INTEGER, T.DATE, "impossible"),
    ],
)
def test_can_cast_verdicts(source, target, verdict):
    assert can_cast(source, target) == verdict
    assert can_cast(source.value, target.value) == CastSafety(verdict)


@pytest.mark.parametrize(
    ("left", "right", "widened"),
    [
        (T.INTEGER, T.NUMBER, T.NUMBER),
        (T.INTEGER, T.DECIMAL, T.DECIMAL),
        (T.DATE, T.DATETIME, T.DATETIME),
        (T.UNKNOWN, T.BOOLEAN, T.BOOLEAN),
        (T.BOOLEAN, T.STRING, T.STRING),
        (T.INTEGER, T.BOOLEAN, T.STRING),
        (T.JSON, T.INTEGER, T.JSON),
    ],
)
def test_common_type_widens_symmetrically(left, right, widened):
    assert common_type(left, right) == widened
    assert common_type(right, left) == widened


def _convert(values, dtype, target):
    frame = pl.DataFrame({"v": values}, schema={"v": dtype})
    return frame.select(cast_expr(pl.col("v"), dtype, target)).to_series().to_list()


def test_text_parses_into_dates_datetimes_numbers_and_booleans_failures_become_null():
    assert _convert(["2024-02-29", "2024-02-30", None], pl.String, T.DATE) == [
        dt.date(2024, 2, 29),
        None,
        None,
    ]
    utc = dt.UTC
    assert _convert(
        ["2024-01-02T03:04:05Z", "2024-01-02T05:04:05+02:00", "2024-01-02 03:04", "soon"],
        pl.String,
        T.DATETIME,
    ) == [
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc),
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc),
        dt.datetime(2024, 1, 2, 3, 4, tzinfo=utc),
        None,
    ]
    assert _convert([" 42 ", "4.2", "x"], pl.String, T.INTEGER) == [42, None, None]
    assert _convert(["yes", "FALSE", "maybe"], pl.String, T.BOOLEAN) == [True, False, None]
    assert _convert(["1.25"], pl.String, T.DECIMAL) == [Decimal("1.250000000")]


def test_everything_renders_as_text_including_nested_values():
    assert _convert([[1, 2], None, []], pl.List(pl.Int64), T.STRING) == ["[1,2]", None, "[]"]
    assert _convert([{"a": 1}, None], pl.Struct({"a": pl.Int64}), T.STRING) == ['{"a":1}', None]
    assert _convert([True, False, None], pl.Boolean, T.STRING) == ["true", "false", None]
    assert _convert([dt.timedelta(hours=1, minutes=30)], pl.Duration("us"), T.STRING) == ["PT1H30M"]
    assert _convert([b"\xff"], pl.Binary, T.STRING) == ["/w=="]  # base64: never invalid UTF-8


def test_naive_datetimes_are_taken_as_utc():
    naive = [dt.datetime(2024, 1, 1, 12)]
    assert _convert(naive, pl.Datetime("us"), T.DATETIME) == [
        dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    ]


_SAMPLE_COLUMNS = [
    pl.Series([1, None], dtype=pl.Int8),
    pl.Series([2**63, None], dtype=pl.UInt64),
    pl.Series([1.5, None], dtype=pl.Float32),
    pl.Series([Decimal("1.25"), None], dtype=pl.Decimal(10, 2)),
    pl.Series([True, None]),
    pl.Series(["1", "2024-01-01"]),
    pl.Series(["1", "2024-01-01"], dtype=pl.Categorical()),
    pl.Series(["a", None], dtype=pl.Enum(["a", "b"])),
    pl.Series([dt.timedelta(days=1), None]),
    pl.Series([dt.date(2024, 1, 1), None]),
    pl.Series([dt.datetime(2024, 1, 1), None], dtype=pl.Datetime("ms")),
    pl.Series([dt.datetime(2024, 1, 1), None]).dt.replace_time_zone("Europe/Paris"),
    pl.Series([dt.time(12, 30), None]),
    pl.Series([b"\x00", None]),
    pl.Series([[1], None]),
    pl.Series([[1, 2], None], dtype=pl.Array(pl.Int64, 2)),
    pl.Series([{"a": 1}, None]),
    pl.Series([None, None]),
]


@pytest.mark.parametrize("column", _SAMPLE_COLUMNS, ids=lambda s: str(s.dtype))
def test_every_conversion_can_cast_allows_runs_and_yields_the_target_type(column):
    frame = pl.DataFrame({"v": column})
    source = logical_from_polars(column.dtype)
    for target in LogicalType:
        if can_cast(source, target) == "impossible" or target in (T.UNKNOWN, T.JSON):
            continue
        converted = frame.select(cast_expr(pl.col("v"), column.dtype, target))
        assert logical_from_polars(converted.dtypes[0]) == target, (column.dtype, target)


def test_impossible_conversions_are_refused_up_front():
    with pytest.raises(CastNotPossibleError):
        cast_expr(pl.col("v"), pl.List(pl.Int64), T.INTEGER)
