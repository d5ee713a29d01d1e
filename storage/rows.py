"""Rows as plain dicts, straight from the driver: the read path of list pages.

Awaiting `QuerySet.values()` runs Tortoise's generic `to_python_value` on every cell; for a
page of 100 rows that conversion (UUID objects, a regex-parsed and re-zoned datetime per
timestamp) costs more than the query. Here a row is zipped with its column names and only the
columns whose stored form is not already what the API serialises are converted: timestamps
(SQLite keeps ISO text), JSON text and SQLite's 0/1 booleans. UUIDs stay text. The dicts are
ready for orjson and give the same JSON as the model would; a column type not listed keeps
Tortoise's own conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from tortoise import fields
from tortoise.models import Model
from tortoise.queryset import QuerySet

Converter = Callable[[Any], Any]
UTC_SUFFIX = "+00:00"


def _uuid_text(value: Any) -> Any:
    # SQLite stores the canonical text; asyncpg returns its own UUID type.
    return value if value is None or isinstance(value, str) else str(value)


def _timestamp(value: Any) -> Any:
    """An aware UTC datetime, or for SQLite's `isoformat(" ")` text in UTC the ISO text
    orjson would print for it (`2026-01-02T03:04:05.123456Z`) without building a datetime."""
    if isinstance(value, str):
        if value.endswith(UTC_SUFFIX) and value[10:11] == " ":
            return f"{value[:10]}T{value[11:-6]}Z"
        value = datetime.fromisoformat(value)
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _boolean(value: Any) -> Any:
    return value if value is None else bool(value)


# Stored as the API shows them: no per-cell work at all.
_AS_STORED = (
    fields.CharField,
    fields.TextField,
    fields.IntField,
    fields.BigIntField,
    fields.SmallIntField,
    fields.FloatField,
)
_BY_FIELD_TYPE: tuple[tuple[type[fields.Field], Converter], ...] = (
    (fields.UUIDField, _uuid_text),
    (fields.DatetimeField, _timestamp),
    (fields.JSONField, _json),
    (fields.BooleanField, _boolean),
)


@cache  # per (model, column): resolved once, not on every list request
def converter(model: type[Model], name: str) -> Converter | None:
    """How a column's stored value becomes its JSON-ready value; None: as stored."""
    field = model._meta.fields_map.get(name)
    if field is None or isinstance(field, _AS_STORED):  # None: an annotation
        return None
    for field_type, convert in _BY_FIELD_TYPE:
        if isinstance(field, field_type):
            return convert
    return field.to_python_value


async def fetch_dicts(queryset: QuerySet[Any], *names: str) -> list[dict[str, Any]]:
    """`await queryset.values(*names)`, with values ready for orjson (UUIDs as text)."""
    query = queryset.values(*names)
    # What `query.sql()` does, without rendering the statement twice (it costs ~50 us).
    query._choose_db_if_not_chosen()
    query._make_query()  # selects `names`, in order, for this query's database
    statement, params = query.query.get_parameterized_sql()
    # query._db: the connection the router chose (a SQLite reader outside transactions).
    _, records = await query._db.execute_query(statement, params)
    rows = [dict(zip(names, record, strict=True)) for record in records]
    for name in names:
        convert = converter(queryset.model, name)
        if convert is not None:
            for row in rows:
                row[name] = convert(row[name])
    return rows
