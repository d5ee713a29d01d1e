"""Differences between two versions of a schema, and a fingerprint to notice that one changed.

Breaking rules. A change is breaking when data that fitted the old schema may no longer fit
the new one (a destination would reject it, a consumer would lose it):
- a removed field is breaking; an added field is not;
- a type change is breaking unless it is a widening, i.e. every old value converts safely into
  the new type (`can_cast(old, new) == "safe"`): integer -> number, integer -> decimal,
  boolean -> integer/number/decimal, date -> datetime, string -> binary and anything -> string
  (every value has a text form, so nothing is lost). A field whose type was unknown (only nulls
  seen) gaining a type is not breaking either;
- nullable -> not-null is breaking (nulls that were accepted now are not); not-null ->
  nullable is not.

Fields are matched by exact name. Changes come in a stable order: the old schema's field order
(type change before nullability change), then added fields in the new schema's order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from engine.schema.polars_types import CastSafety, can_cast
from engine.schema.types import Field, LogicalType, StreamSchema

SchemaLike = StreamSchema | Sequence[Field | Mapping[str, Any]]


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    TYPE_CHANGED = "type_changed"
    NULLABILITY_CHANGED = "nullability_changed"


class SchemaChange(BaseModel):
    field: str
    change: ChangeKind
    from_type: LogicalType | None = None
    to_type: LogicalType | None = None
    from_nullable: bool | None = None
    to_nullable: bool | None = None
    breaking: bool

    def describe(self) -> str:
        """One line a person can read, e.g. "price: type changed from number to string"."""
        if self.change == ChangeKind.ADDED:
            return f"{self.field}: added ({self.to_type})"
        if self.change == ChangeKind.REMOVED:
            return f"{self.field}: removed"
        if self.change == ChangeKind.TYPE_CHANGED:
            return f"{self.field}: type changed from {self.from_type} to {self.to_type}"
        before = "nullable" if self.from_nullable else "not null"
        after = "nullable" if self.to_nullable else "not null"
        return f"{self.field}: changed from {before} to {after}"


def as_fields(schema: SchemaLike) -> list[Field]:
    """The fields of a StreamSchema, a list of Fields or a list of field dicts."""
    if isinstance(schema, StreamSchema):
        return list(schema.fields)
    return [f if isinstance(f, Field) else Field.model_validate(f) for f in schema]


def is_widening(old: LogicalType, new: LogicalType) -> bool:
    """True when changing a field from `old` to `new` loses no value (a non-breaking change)."""
    return old == LogicalType.UNKNOWN or can_cast(old, new) == CastSafety.SAFE


def type_change(name: str, old: LogicalType, new: LogicalType) -> SchemaChange:
    return SchemaChange(
        field=name,
        change=ChangeKind.TYPE_CHANGED,
        from_type=old,
        to_type=new,
        breaking=not is_widening(old, new),
    )


def nullability_change(name: str, old_nullable: bool, new_nullable: bool) -> SchemaChange:
    return SchemaChange(
        field=name,
        change=ChangeKind.NULLABILITY_CHANGED,
        from_nullable=old_nullable,
        to_nullable=new_nullable,
        breaking=old_nullable and not new_nullable,
    )


def compare(left: SchemaLike, right: SchemaLike) -> list[SchemaChange]:
    """What changed going from `left` (old) to `right` (new)."""
    old_fields, new_fields = as_fields(left), as_fields(right)
    new_by_name = {f.name: f for f in new_fields}
    old_names = {f.name for f in old_fields}
    changes: list[SchemaChange] = []
    for old in old_fields:
        new = new_by_name.get(old.name)
        if new is None:
            changes.append(
                SchemaChange(
                    field=old.name, change=ChangeKind.REMOVED, from_type=old.type, breaking=True
                )
            )
            continue
        if new.type != old.type:
            changes.append(type_change(old.name, old.type, new.type))
        if new.nullable != old.nullable:
            changes.append(nullability_change(old.name, old.nullable, new.nullable))
    changes.extend(
        SchemaChange(field=new.name, change=ChangeKind.ADDED, to_type=new.type, breaking=False)
        for new in new_fields
        if new.name not in old_names
    )
    return changes


def has_breaking_changes(changes: Iterable[SchemaChange]) -> bool:
    return any(change.breaking for change in changes)


def schema_fingerprint(fields: SchemaLike) -> str:
    """A stable hash of what `compare` looks at (names, logical types, nullability).

    Field order, native types and descriptions do not count, so two schemas have the same
    fingerprint exactly when `compare` finds no change between them.
    """
    canonical = sorted((field.name, str(field.type), field.nullable) for field in as_fields(fields))
    payload = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()
