"""Infer a stream schema from sample records (API responses, JSON files, dry-run test data).

Nested objects are flattened into dotted field names ("address.city") down to `flatten_depth`
levels; deeper objects and all arrays stay whole as `json`. Mixed types widen (see
`common_type`), a key that is missing or None in any record makes the field nullable, and
ISO-8601 date / datetime text is recognised as date / datetime.

`flatten_records` then shapes records to those fields (same keys, values converted to the
field's type) so that a Polars frame built from them is consistent with the schema.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from engine.schema.polars_types import common_type, polars_dtype_for
from engine.schema.types import Field, LogicalType, StreamSchema

DEFAULT_FLATTEN_DEPTH = 3
DEFAULT_MAX_RECORDS = 10_000
DEFAULT_MAX_FIELDS = 1_000
DEFAULT_MAX_DEPTH = 32  # raw nesting (objects and arrays) any value may have
SEPARATOR = "."

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)


class SchemaInferenceError(ValueError):
    """The sample cannot be turned into a schema (e.g. a record is not an object)."""


class SampleLimitError(SchemaInferenceError):
    """The sample exceeds a size limit; `limit` names it, `maximum` is its value."""

    def __init__(self, limit: str, maximum: int, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum


@dataclass(frozen=True)
class InferenceLimits:
    flatten_depth: int = DEFAULT_FLATTEN_DEPTH
    max_records: int = DEFAULT_MAX_RECORDS
    max_fields: int = DEFAULT_MAX_FIELDS
    max_depth: int = DEFAULT_MAX_DEPTH


@dataclass
class _Observed:
    type: LogicalType = LogicalType.UNKNOWN
    seen_in: int = 0  # records in which the key held a non-null value


# --- inference --------------------------------------------------------------------------------


def infer_schema(
    records: Sequence[Mapping[str, Any]],
    *,
    name: str = "sample",
    kind: str = "resource",
    limits: InferenceLimits | None = None,
) -> StreamSchema:
    """The schema of a list of records (dicts)."""
    fields = infer_fields(records, limits=limits)
    return StreamSchema(name=name, fields=fields, row_estimate=len(records), kind=kind)


def infer_fields(
    records: Sequence[Mapping[str, Any]], *, limits: InferenceLimits | None = None
) -> list[Field]:
    """The fields of a list of records, in first-seen order."""
    limits = limits or InferenceLimits()
    _check_sample(records, limits)
    observed: dict[str, _Observed] = {}
    for record in records:
        for path, value in _flatten(record, limits.flatten_depth):
            seen = observed.setdefault(path, _Observed())
            if len(observed) > limits.max_fields:
                raise SampleLimitError(
                    "max_fields",
                    limits.max_fields,
                    f"the sample has more than {limits.max_fields} fields",
                )
            value_type = logical_type_of(value)
            if value_type != LogicalType.UNKNOWN:
                seen.seen_in += 1
                seen.type = common_type(seen.type, value_type)
    _collapse_conflicts(observed)
    return [
        Field(name=path, type=seen.type, nullable=seen.seen_in < len(records))
        for path, seen in observed.items()
    ]


def logical_type_of(value: Any) -> LogicalType:
    """The logical type of one Python value as found in JSON-like records."""
    if value is None:
        return LogicalType.UNKNOWN
    if isinstance(value, bool):  # before int: bool is an int subclass
        return LogicalType.BOOLEAN
    if isinstance(value, int):
        return LogicalType.INTEGER
    if isinstance(value, float):
        return LogicalType.NUMBER
    if isinstance(value, decimal.Decimal):
        return LogicalType.DECIMAL
    if isinstance(value, str):
        return _text_type(value)
    if isinstance(value, dt.datetime):  # before date: datetime is a date subclass
        return LogicalType.DATETIME
    if isinstance(value, dt.date):
        return LogicalType.DATE
    if isinstance(value, dt.time):
        return LogicalType.TIME
    if isinstance(value, bytes | bytearray):
        return LogicalType.BINARY
    if isinstance(value, Mapping | list | tuple):
        return LogicalType.JSON
    return LogicalType.STRING


def _text_type(text: str) -> LogicalType:
    # The regexes reject most text cheaply; fromisoformat rejects impossible dates (2024-13-45).
    try:
        if _ISO_DATE.match(text):
            dt.date.fromisoformat(text)
            return LogicalType.DATE
        if _ISO_DATETIME.match(text):
            dt.datetime.fromisoformat(text)
            return LogicalType.DATETIME
    except ValueError:
        pass
    return LogicalType.STRING


def _check_sample(records: Sequence[Mapping[str, Any]], limits: InferenceLimits) -> None:
    if len(records) > limits.max_records:
        raise SampleLimitError(
            "max_records",
            limits.max_records,
            f"the sample has {len(records)} records; at most {limits.max_records} are allowed",
        )
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise SchemaInferenceError(f"record {index} is not an object")
        if _nesting_exceeds(record, limits.max_depth):
            raise SampleLimitError(
                "max_depth",
                limits.max_depth,
                f"record {index} is nested deeper than {limits.max_depth} levels",
            )


def _nesting_exceeds(value: Any, max_depth: int) -> bool:
    # Iterative on purpose: a hostile payload must not be able to exhaust the Python stack.
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > max_depth:
            return True
        if isinstance(current, Mapping):
            stack.extend((child, depth + 1) for child in current.values())
        elif isinstance(current, list | tuple):
            stack.extend((child, depth + 1) for child in current)
    return False


def _flatten(record: Mapping[str, Any], depth: int, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) pairs; objects below `depth` levels are yielded whole."""
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth > 1 and value:
            yield from _flatten(value, depth - 1, path + SEPARATOR)
        else:
            yield path, value


def _collapse_conflicts(observed: dict[str, _Observed]) -> None:
    """A key that is an object in one record and a scalar in another ("address": "Paris" vs
    {"city": ...}) becomes one json field instead of a scalar plus its would-be children."""
    for path in list(observed):
        if path not in observed:
            continue
        children = [p for p in observed if p.startswith(path + SEPARATOR)]
        if not children:
            continue
        seen = observed[path]
        seen.type = LogicalType.JSON
        # A record holds either the scalar or the object, so the two counts add up; the
        # children's best count stands for the records holding the object.
        seen.seen_in += max(observed[c].seen_in for c in children)
        for child in children:
            del observed[child]


# --- shaping records --------------------------------------------------------------------------


def flatten_records(
    records: Sequence[Mapping[str, Any]],
    fields: Sequence[Field] | None = None,
    *,
    limits: InferenceLimits | None = None,
) -> list[dict[str, Any]]:
    """Records shaped to `fields` (inferred when not given): every record gets exactly the
    fields' keys, nested objects flattened the same way, and values converted to the field type
    (json values become JSON text, widened numbers floats, ISO text dates and datetimes, naive
    datetimes UTC). A value that cannot be converted becomes None."""
    if fields is None:
        fields = infer_fields(records, limits=limits)
    types = {f.name: f.type for f in fields}
    prefixes = _prefixes(types)
    shaped = []
    for record in records:
        row = dict.fromkeys(types)
        for path, value in _walk(record, types, prefixes):
            row[path] = _convert(value, types[path])
        shaped.append(row)
    return shaped


def frame_from_records(
    records: Sequence[Mapping[str, Any]], fields: Sequence[Field] | None = None
) -> pl.DataFrame:
    """A Polars frame of the records, typed by `fields` (inferred when not given)."""
    if fields is None:
        fields = infer_fields(records)
    schema = {f.name: polars_dtype_for(f.type) for f in fields}
    return pl.DataFrame(flatten_records(records, fields), schema=schema)


def _prefixes(types: Mapping[str, LogicalType]) -> set[str]:
    prefixes = set()
    for name in types:
        parts = name.split(SEPARATOR)
        prefixes.update(SEPARATOR.join(parts[:i]) for i in range(1, len(parts)))
    return prefixes


def _walk(
    record: Mapping[str, Any],
    types: Mapping[str, LogicalType],
    prefixes: set[str],
    prefix: str = "",
) -> Iterator[tuple[str, Any]]:
    # Driven by the field names, not a depth: a field that is json because of a conflict must
    # be taken whole even where another record would be flattened.
    for key, value in record.items():
        path = f"{prefix}{key}"
        if path in types:
            yield path, value
        elif path in prefixes and isinstance(value, Mapping):
            yield from _walk(value, types, prefixes, path + SEPARATOR)


def _convert(value: Any, target: LogicalType) -> Any:
    if value is None:
        return None
    try:
        return _CONVERTERS[target](value)
    except (ValueError, TypeError, ArithmeticError):
        return None


def _to_json_text(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | Mapping | list | tuple):
        return _to_json_text(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise TypeError("not a datetime")
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _to_date(value: Any) -> dt.date:
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise TypeError("not a date")


def _to_time(value: Any) -> dt.time:
    if isinstance(value, str):
        return dt.time.fromisoformat(value)
    if isinstance(value, dt.time):
        return value
    raise TypeError("not a time")


def _to_integer(value: Any) -> int:
    # Lenient where nothing is lost: 3.0 and "3" are the integer 3, 3.5 is not.
    if isinstance(value, float | decimal.Decimal):
        if value != int(value):
            raise ValueError("not a whole number")
        return int(value)
    if isinstance(value, int | str):
        return int(value)
    raise TypeError("not an integer")


def _to_number(value: Any) -> float:
    if isinstance(value, int | float | decimal.Decimal | str):
        return float(value)
    raise TypeError("not a number")


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal | str):
        raise TypeError("not a decimal")
    result = decimal.Decimal(str(value))
    if not result.is_finite():
        raise ValueError("not a finite decimal")
    return result


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError("not a boolean")


def _to_binary(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise TypeError("not binary")


def _to_nothing(value: Any) -> None:
    # A field of unknown type has only ever been null; its column can hold nothing else.
    return None


_CONVERTERS = {
    LogicalType.STRING: _to_text,
    LogicalType.JSON: _to_json_text,
    LogicalType.INTEGER: _to_integer,
    LogicalType.NUMBER: _to_number,
    LogicalType.DECIMAL: _to_decimal,
    LogicalType.DATETIME: _to_datetime,
    LogicalType.DATE: _to_date,
    LogicalType.TIME: _to_time,
    LogicalType.BOOLEAN: _to_boolean,
    LogicalType.BINARY: _to_binary,
    LogicalType.UNKNOWN: _to_nothing,
}
