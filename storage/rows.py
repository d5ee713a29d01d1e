"""Rows as plain dicts, straight from the driver: the read path of list pages and of the
execution status.

Awaiting `QuerySet.values()` renders the statement with pypika and runs Tortoise's generic
`to_python_value` on every cell; for a page of 100 rows both cost more than the query. Here:

- a statement is rendered by Tortoise once per shape (`Select.shape`) and then reused with each
  call's own parameters;
- a list page and its total come from one statement (`select_page`);
- only columns whose stored form is not already what the API serialises are converted, a whole
  column at a time: timestamps (SQLite keeps ISO text), JSON text, SQLite's 0/1 booleans; UUIDs
  stay text. The dicts are ready for orjson and give the same JSON as the model would; a column
  type not listed keeps Tortoise's own conversion.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, reduce
from itertools import repeat
from operator import or_
from typing import Any

import orjson
from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.filters import escape_like
from tortoise.models import Model
from tortoise.queryset import QuerySet

from storage.db import fetch_records, read_connection

ColumnConverter = Callable[[Sequence[Any]], Sequence[Any]]


def _uuid_text(value: Any) -> Any:
    # SQLite stores the canonical text; asyncpg returns its own UUID type.
    return value if value is None or isinstance(value, str) else str(value)


def _timestamp(value: Any) -> Any:
    """An aware UTC datetime (orjson prints it as `...Z`) from SQLite's ISO text or a driver's
    datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _timestamps(column: Sequence[Any]) -> Sequence[Any]:
    # SQLite keeps aware UTC values as `isoformat(" ")` text ("2026-01-02 03:04:05.123456+00:00").
    # A column of them becomes the text orjson prints for those datetimes
    # ("2026-01-02T03:04:05.123456Z") in a few C-level passes over one joined string: per
    # value, even a C call costs more. A NULL or a driver's datetime takes the general path.
    if not column:
        return column
    try:
        text = _UNIT_SEPARATOR.join(column)
    except TypeError:
        return [_timestamp(value) for value in column]
    return text.replace(" ", "T").replace("+00:00", "Z").split(_UNIT_SEPARATOR)


_UNIT_SEPARATOR = "\x1f"  # never in a timestamp


def _uuid_texts(column: Sequence[Any]) -> Sequence[Any]:
    # One driver per column: SQLite gives the canonical text, asyncpg UUID objects.
    sample = next((value for value in column if value is not None), None)
    return column if sample is None or isinstance(sample, str) else [_uuid_text(v) for v in column]


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
_BY_FIELD_TYPE: tuple[tuple[type[fields.Field], ColumnConverter], ...] = (
    (fields.UUIDField, _uuid_texts),
    (fields.DatetimeField, _timestamps),
    (fields.JSONField, lambda column: [_json(value) for value in column]),
    (fields.BooleanField, lambda column: [_boolean(value) for value in column]),
)


@cache  # per (model, column): resolved once, not on every list request
def converter(model: type[Model], name: str) -> ColumnConverter | None:
    """How a column's stored values become JSON-ready values; None: as stored."""
    field = model._meta.fields_map.get(name)
    if field is None or isinstance(field, _AS_STORED):  # None: an annotation
        return None
    for field_type, convert in _BY_FIELD_TYPE:
        if isinstance(field, field_type):
            return convert
    return lambda column: [field.to_python_value(value) for value in column]


@cache
def _converters(
    model: type[Model], names: tuple[str, ...]
) -> tuple[tuple[int, ColumnConverter], ...]:
    converters = ((index, converter(model, name)) for index, name in enumerate(names))
    return tuple((index, convert) for index, convert in converters if convert is not None)


@dataclass(frozen=True)
class Select:
    """A read of `names` from `model`: equality filters (`name`, or `name__isnull` with a
    bool), an optional case-insensitive search of `q` across `search` (any may match),
    ordering (`-name` descending), limit and offset. Everything the list pages and the
    execution status need, and nothing that would make the statement's text depend on values.
    """

    model: type[Model]
    names: tuple[str, ...]
    where: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    search: tuple[str, ...] = ()
    q: str | None = None
    order: tuple[str, ...] = ()
    limit: int | None = None
    offset: int = 0

    def shape(self, dialect: str, count: bool) -> tuple[Any, ...]:
        """What decides the statement's text: the same shape, the same SQL."""
        where = tuple(
            (name, value) if name.endswith("__isnull") else name
            for name, value in self.where.items()
        )
        search = self.search if self.q else ()
        paging = () if count else (self.names, self.order, self.limit is not None, self.offset > 0)
        return (dialect, count, self.model, where, search, paging)

    def params(self, count: bool) -> list[Any]:
        """The statement's parameters, in the order Tortoise renders them."""
        fields_map = self.model._meta.fields_map
        params = [
            fields_map[name].to_db_value(value, self.model)
            for name, value in self.where.items()
            if not name.endswith("__isnull")
        ]
        if self.q:
            params += [f"%{escape_like(self.q)}%"] * len(self.search)
        if not count and self.limit is not None:
            params.append(self.limit)
            if self.offset:
                params.append(self.offset)
        return params

    def queryset(self) -> QuerySet[Any]:
        queryset = self.model.all()
        for name, value in self.where.items():  # one by one: rendered in this order
            queryset = queryset.filter(**{name: value})
        if self.q and self.search:
            queryset = queryset.filter(
                reduce(or_, (Q(**{f"{name}__icontains": self.q}) for name in self.search))
            )
        if self.order:
            queryset = queryset.order_by(*self.order)
        if self.limit is not None:
            queryset = queryset.limit(self.limit)
        if self.offset:
            queryset = queryset.offset(self.offset)
        return queryset


# Rendered statements by shape. Tortoise renders a statement in ~100-200 us, more than SQLite
# takes to run it; shapes come from code paths and sort options, so there are few of them.
_statements: dict[tuple[Any, ...], str] = {}
MAX_CACHED_STATEMENTS = 1_000


def _statement(select: Select, db: BaseDBAsyncClient, count: bool) -> tuple[str, list[Any]]:
    shape = select.shape(db.capabilities.dialect, count)
    params = select.params(count)
    cached = _statements.get(shape)
    if cached is not None:
        return cached, params
    queryset = select.queryset()
    query = queryset.count() if count else queryset.values(*select.names)
    query._db = db
    query._make_query()  # selects `names`, in order, for this database
    statement, rendered = query.query.get_parameterized_sql()
    # Cached only when the parameters computed here are exactly those Tortoise rendered, so
    # a later call of the same shape can run the text with its own values.
    if rendered == params:
        _remember(_statements, shape, statement)
    return statement, rendered


def _remember(cache: dict[Any, str], key: Any, statement: str) -> None:
    if len(cache) >= MAX_CACHED_STATEMENTS:  # client-chosen sorts make shapes; keep it bounded
        cache.clear()
    cache[key] = statement


def _with_total(rows_statement: str, count_statement: str, count_params: int) -> str:
    """The rows statement with the count as an extra last column: `SELECT a, b, (SELECT
    COUNT(*) ...) FROM ...`. The subquery's parameters come first in the text, so they go first;
    numbered placeholders (PostgreSQL's $n) of the rows statement move up by their number."""
    renumbered = _PLACEHOLDER.sub(lambda m: f"${int(m[1]) + count_params}", rows_statement)
    return renumbered.replace(" FROM ", f",({count_statement}) FROM ", 1)


_PLACEHOLDER = re.compile(r"\$(\d+)")
_with_total_cache: dict[tuple[str, str], str] = {}


def _rows(select: Select, records: list[Any]) -> list[dict[str, Any]]:
    """Records as dicts. Columns are converted whole (see `converter`), then zipped with their
    names (a page's records carry the total as an extra last column, which zip leaves out).
    map() rather than a comprehension with zip(strict=...): a quarter faster per page."""
    names = select.names
    converters = _converters(select.model, names)
    if converters and records:
        columns = list(zip(*records, strict=True))
        for index, convert in converters:
            columns[index] = convert(columns[index])
        records = list(zip(*columns, strict=True))
    return list(map(dict, map(zip, repeat(names), records)))


async def select_rows(select: Select) -> list[dict[str, Any]]:
    """The rows as dicts with values ready for orjson (UUIDs as text), like `.values()`."""
    # A SQLite reader outside transactions, the transaction inside one.
    db = read_connection()
    statement, params = _statement(select, db, count=False)
    records = await fetch_records(db, statement, params)
    return _rows(select, records)


async def select_page(select: Select) -> tuple[list[dict[str, Any]], int]:
    """The rows and how many rows match in all (ignoring order, limit and offset), in one
    statement: one round trip to the database instead of two."""
    db = read_connection()
    rows_statement, rows_params = _statement(select, db, count=False)
    count_statement, count_params = _statement(select, db, count=True)
    key = (rows_statement, count_statement)
    statement = _with_total_cache.get(key)
    if statement is None:
        statement = _with_total(rows_statement, count_statement, len(count_params))
        _remember(_with_total_cache, key, statement)
    records = await fetch_records(db, statement, count_params + rows_params)
    if records:
        return _rows(select, records), records[0][-1]
    # A page past the end has no row to carry the total.
    return [], 0 if select.offset == 0 else await count_rows(select)


async def count_rows(select: Select) -> int:
    """How many rows `select` matches, ignoring its order, limit and offset."""
    db = read_connection()
    statement, params = _statement(select, db, count=True)
    records = await fetch_records(db, statement, params)
    return records[0][0]
