"""Logical types: the vocabulary every source's native types are mapped onto."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class LogicalType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    TIME = "time"
    BINARY = "binary"
    JSON = "json"  # objects and arrays kept whole
    UNKNOWN = "unknown"


class Field(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: LogicalType
    nullable: bool = True
    native_type: str | None = None
    primary_key: bool = False


class StreamSchema(BaseModel):
    """A table, an API resource or a file sheet."""

    model_config = ConfigDict(extra="forbid")

    name: str
    fields: list[Field]
    row_estimate: int | None = None
    foreign_keys: list[dict] = []
    kind: str = "table"  # table | view | resource | file | sheet | dataset
