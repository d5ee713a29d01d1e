"""Schema inference from sample records, as `POST /schema/infer {sample}` shows it."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from engine.schema import (
    InferenceLimits,
    LogicalType,
    SampleLimitError,
    SchemaInferenceError,
    StreamSchema,
    flatten_records,
    frame_from_records,
    infer_fields,
    infer_schema,
)

T = LogicalType

ORDERS = [
    {
        "id": 1,
        "total": 10,
        "paid": True,
        "placed_on": "2024-03-01",
        "updated_at": "2024-03-01T10:00:00Z",
        "customer": {"name": "Ada", "address": {"city": "London", "zip": "N1"}},
        "items": [{"sku": "A", "qty": 1}],
        "note": None,
    },
    {
        "id": 2,
        "total": 12.5,
        "paid": False,
        "placed_on": "2024-03-02",
        "updated_at": "2024-03-02T11:30:00+01:00",
        "customer": {"name": "Grace", "address": {"city": "Paris"}},
        "items": [],
    },
]


def _types(fields):
    return {f.name: f.type for f in fields}


def _nullable(fields):
    return {f.name: f.nullable for f in fields}


def test_infers_one_stream_with_fields_in_first_seen_order():
    schema = infer_schema(ORDERS, name="orders")
    assert isinstance(schema, StreamSchema)
    assert schema.name == "orders"
    assert schema.row_estimate == 2
    assert [f.name for f in schema.fields] == [
        "id",
        "total",
        "paid",
        "placed_on",
        "updated_at",
        "customer.name",
        "customer.address.city",
        "customer.address.zip",
        "items",
        "note",
    ]


def test_types_are_detected_and_mixed_numbers_widen():
    types = _types(infer_fields(ORDERS))
    assert types["id"] == T.INTEGER
    assert types["total"] == T.NUMBER  # 10 and 12.5
    assert types["paid"] == T.BOOLEAN
    assert types["placed_on"] == T.DATE
    assert types["updated_at"] == T.DATETIME
    assert types["customer.address.city"] == T.STRING
    assert types["items"] == T.JSON  # arrays stay whole
    assert types["note"] == T.UNKNOWN  # only ever null


def test_nullability_comes_from_missing_keys_and_nulls():
    nullable = _nullable(infer_fields(ORDERS))
    assert nullable["id"] is False
    assert nullable["customer.address.city"] is False
    assert nullable["customer.address.zip"] is True  # missing in the second record
    assert nullable["note"] is True  # None / missing


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, "one"], T.STRING),
        ([True, 1], T.STRING),
        (["2024-01-01", "2024-01-01T00:00:00"], T.DATETIME),
        (["2024-01-01", "tomorrow"], T.STRING),
        (["2024-13-45"], T.STRING),  # looks like a date, is not one
        ([1, [1, 2]], T.JSON),
        ([None, 3], T.INTEGER),
    ],
)
def test_mixed_values_widen(values, expected):
    fields = infer_fields([{"v": value} for value in values])
    assert _types(fields) == {"v": expected}


def test_objects_deeper_than_the_flatten_depth_stay_whole_as_json():
    record = {"a": {"b": {"c": {"d": 1}}}}
    assert _types(infer_fields([record])) == {"a.b.c": T.JSON}
    shallow = infer_fields([record], limits=InferenceLimits(flatten_depth=1))
    assert _types(shallow) == {"a": T.JSON}


def test_a_key_that_is_sometimes_an_object_and_sometimes_a_scalar_becomes_json():
    records = [{"address": "Paris"}, {"address": {"city": "Lyon"}}]
    assert _types(infer_fields(records)) == {"address": T.JSON}
    assert flatten_records(records) == [{"address": '"Paris"'}, {"address": '{"city":"Lyon"}'}]


def test_flatten_records_gives_every_record_the_same_keys_and_typed_values():
    rows = flatten_records(ORDERS)
    assert all(list(row) == list(rows[0]) for row in rows)
    first, second = rows
    assert first["customer.address.zip"] == "N1"
    assert second["customer.address.zip"] is None
    assert first["total"] == 10.0 and isinstance(first["total"], float)
    assert first["placed_on"] == dt.date(2024, 3, 1)
    assert second["updated_at"] == dt.datetime(2024, 3, 2, 10, 30, tzinfo=dt.UTC)
    assert first["items"] == '[{"sku":"A","qty":1}]'


def test_frame_from_records_is_typed_by_the_inferred_schema():
    frame = frame_from_records(ORDERS)
    assert frame.height == 2
    assert frame.schema["total"] == pl.Float64
    assert frame.schema["placed_on"] == pl.Date
    assert frame.schema["updated_at"] == pl.Datetime("us", "UTC")
    assert frame["customer.address.city"].to_list() == ["London", "Paris"]


def test_mixed_int_and_text_still_builds_a_frame():
    frame = frame_from_records([{"code": 7}, {"code": "A7"}, {"code": True}])
    assert frame["code"].to_list() == ["7", "A7", "true"]


def test_too_many_records_is_refused_with_a_clear_error():
    with pytest.raises(SampleLimitError, match="at most 3") as raised:
        infer_fields([{"a": i} for i in range(4)], limits=InferenceLimits(max_records=3))
    assert raised.value.limit == "max_records"
    assert isinstance(raised.value, ValueError)


def test_too_many_fields_is_refused():
    wide = [{f"c{i}": i for i in range(11)}]
    with pytest.raises(SampleLimitError, match="more than 10 fields"):
        infer_fields(wide, limits=InferenceLimits(max_fields=10))


def test_absurdly_deep_nesting_is_refused_without_recursing():
    deep: object = 1
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = [deep]
    with pytest.raises(SampleLimitError) as raised:
        infer_fields([{"v": deep}])
    assert raised.value.limit == "max_depth"


def test_records_must_be_objects():
    with pytest.raises(SchemaInferenceError, match="record 1"):
        infer_fields([{"a": 1}, [1, 2]])


def test_an_empty_sample_has_no_fields():
    assert infer_schema([]).fields == []
