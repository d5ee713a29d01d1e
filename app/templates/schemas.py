from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from app.auth.schemas import StrictModel
from app.core.listing import ListQuery
from app.pipelines.schemas import VisualDefinition

MAX_PARAMETERS_SCHEMA_KEYS = 100
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


class TemplateCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: dict(EMPTY_PARAMETERS),
        max_length=MAX_PARAMETERS_SCHEMA_KEYS,
        description="JSON Schema (draft 2020-12) of the parameters; the canvas refers to them "
        'as "{{name}}" (a whole string keeps the value\'s type)',
    )
    visual_definition: VisualDefinition


class TemplateUpdate(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    parameters: dict[str, Any] | None = Field(None, max_length=MAX_PARAMETERS_SCHEMA_KEYS)
    visual_definition: VisualDefinition | None = None


class TemplateSummary(BaseModel):
    id: UUID
    name: str
    description: str
    builtin: bool
    owner_id: UUID | None
    created_at: datetime
    updated_at: datetime


class TemplateOut(TemplateSummary):
    parameters: dict[str, Any]
    visual_definition: dict[str, Any]


class TemplateListQuery(ListQuery):
    builtin: bool | None = None


class InstantiateRequest(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    parameters: dict[str, Any] = Field(default_factory=dict, max_length=100)


class SaveAsTemplateRequest(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: dict(EMPTY_PARAMETERS), max_length=MAX_PARAMETERS_SCHEMA_KEYS
    )
