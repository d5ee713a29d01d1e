"""Request and response models of configuration validation and templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from app.auth.schemas import StrictModel
from app.connectors.schemas import MAX_CONFIG_KEYS
from app.core.listing import ListQuery


class ValidateBody(StrictModel):
    type: str = Field(min_length=1, max_length=64)
    config: dict[str, Any] = Field(default_factory=dict, max_length=MAX_CONFIG_KEYS)


class ValidationOut(BaseModel):
    valid: bool
    errors: list[dict[str, str]] = Field(description="[{pointer, message}], pointers into config")


class TemplateCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=5000)
    config: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_CONFIG_KEYS,
        description="Part of a configuration: required fields may be left out",
    )


class TemplateUpdate(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    config: dict[str, Any] | None = Field(None, max_length=MAX_CONFIG_KEYS)


class TemplateOut(BaseModel):
    id: UUID
    name: str
    type: str
    description: str
    config: dict[str, Any] = Field(description="Secrets are masked as ********")
    owner_id: UUID | None
    created_at: datetime
    updated_at: datetime


class ConnectorFromTemplate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    config: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_CONFIG_KEYS,
        description="Top-level fields that complete or override the template's; masked "
        "secrets keep the template's",
    )


class TemplateListQuery(ListQuery):
    type: str | None = Field(None, max_length=64)
