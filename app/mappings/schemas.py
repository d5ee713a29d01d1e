"""Request and response models of the mapping API."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from app.auth.schemas import StrictModel
from app.core.listing import ListQuery
from app.schema.schemas import unwrap_stream
from engine.schema import Field as SchemaField
from engine.schema import MappingRule

MAX_FIELDS = 2_000
MAX_RULES = 2_000


class _Schemas(StrictModel):
    @field_validator("source_schema", "target_schema", mode="before", check_fields=False)
    @classmethod
    def _fields_of_stream(cls, value: Any) -> Any:
        return unwrap_stream(value)


class MappingCreate(_Schemas):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    source_schema: list[SchemaField] = Field(max_length=MAX_FIELDS)
    target_schema: list[SchemaField] = Field(min_length=1, max_length=MAX_FIELDS)
    rules: list[MappingRule] = Field(default_factory=list, max_length=MAX_RULES)


class MappingUpdate(_Schemas):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    source_schema: list[SchemaField] | None = Field(None, max_length=MAX_FIELDS)
    target_schema: list[SchemaField] | None = Field(None, min_length=1, max_length=MAX_FIELDS)
    rules: list[MappingRule] | None = Field(None, max_length=MAX_RULES)


class MappingOut(BaseModel):
    id: UUID
    name: str
    description: str
    source_schema: list[dict[str, Any]]
    target_schema: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    owner_id: UUID | None
    created_at: datetime
    updated_at: datetime
    warnings: list[dict[str, str]] = []


class MappingListQuery(ListQuery):
    pass


class SuggestBody(_Schemas):
    source_schema: list[SchemaField] = Field(max_length=MAX_FIELDS)
    target_schema: list[SchemaField] = Field(max_length=MAX_FIELDS)
    threshold: float = Field(0.6, ge=0.1, le=1.0)


class ValidationOut(BaseModel):
    valid: bool
    errors: list[dict[str, str]]
    warnings: list[dict[str, str]]


class TransformationBody(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
